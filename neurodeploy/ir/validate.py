"""Check a compiled network before anything runs it: what `ir.serialize.load` does to every
directory it reads, and what `compiler.compile_graph` does to everything it emits.

A compiled directory is a user's file: it can be edited, truncated, or written by another tool.
The simulator and the reports trust what they get (a weight mantissa of 2^40 would simply be
simulated), so every value is checked here against

* its field's declaration (`ir.fields`): the type, and the range in the target's bit widths, of
  every field of every layer, branch, synapse op and neuron (each scheme's neurons declare their
  own, and add relations between fields in `Neuron.relation_problem`);
* the graph: one input encoder first, the readout last, names unique, every branch reading an
  earlier layer (no self-loops, no cycles), neuron types of the graph's own scheme;
* the shapes: each branch's ops applied to its source's shape (arithmetic only, nothing is
  allocated) must give the layer's shape, with weights shaped for it; per-channel arrays match
  the channels.

The first problem found stops the check with a `NeurodeployError` naming the layer and field.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..errors import NeurodeployError
from ..limits import MAX_RUN_STEPS
from . import synapses as syn
from .fields import field_problems
from .neurons import Neuron, Readout
from .spiking import Branch, InputEncoder, Layer, SpikingGraph


class _Invalid(Exception):
    """A problem found, with where it is (raised inside, turned into a NeurodeployError at the door)."""

    def __init__(self, where: str, what: str):
        super().__init__(what)
        self.where, self.what = where, what


def validate_graph(graph: SpikingGraph, target, where: str, hint: str) -> None:
    """Refuse a network whose fields, graph or shapes are not what a compile produces.

    target: the `target.Target` the network was compiled for (its widths bound the integers);
    where: the file or object named in the error; hint: what the user should do."""
    validate_parts(graph.scheme, graph.layers, graph.meta, target, where, hint)


def validate_parts(scheme_name: str, layers, meta, target, where: str, hint: str) -> None:
    """`validate_graph` on the parts of a graph not yet built (`SpikingGraph` itself refuses
    duplicate names and unknown sources with a bare ValueError)."""
    try:
        _check_graph(scheme_name, layers, meta, target)
    except _Invalid as bad:
        raise NeurodeployError(f"{bad.where}: {bad.what}" if bad.where else bad.what, where, hint) from None


def _check_graph(scheme_name: str, layers, meta, target) -> None:
    from ..registry import get_scheme
    scheme = get_scheme(scheme_name)
    allowed = set(scheme.neuron_types) | {Readout}
    for cls in allowed:
        check_declarations(cls)
    _check_layers(layers, allowed, target, "")
    if not isinstance(meta, dict):
        raise _Invalid("meta", f"must be an object, not {type(meta).__name__}")
    for key in ("latency_steps", "throughput_steps"):
        value = meta.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or not 0 <= value <= MAX_RUN_STEPS):
            raise _Invalid(f"meta.{key}", f"= {value!r} must be an integer in 0..{MAX_RUN_STEPS}")
    for key, value in meta.items():
        # another layer list kept beside the network (bitplane's lossy artifacts keep the exact one)
        if isinstance(value, list) and value and isinstance(value[0], (InputEncoder, Layer)):
            _check_layers(value, allowed, target, f"meta.{key}: ")


def _check_layers(layers, allowed: set, target, prefix: str) -> None:
    if not isinstance(layers, list) or len(layers) < 2:
        raise _Invalid(f"{prefix}layers", "a network needs an input encoder, at least one layer and a readout")
    shapes: dict[str, tuple] = {}
    for i, layer in enumerate(layers):
        label = f"{prefix}layer {i}"
        expected = InputEncoder if i == 0 else Layer
        if type(layer) is not expected:
            what = "the input encoder" if i == 0 else "a Layer"
            raise _Invalid(label, f"is a {type(layer).__name__}, expected {what}")
        name = getattr(layer, "name", None)
        if isinstance(name, str) and 0 < len(name) <= 200:      # name the layer as soon as the name is usable
            label = f"{prefix}layer '{name}'"
        _check_neuron_fields(layer.neuron, allowed, target, label)
        _check_fields(layer, Formats(target, layer.neuron.formats(target)), label)
        label = f"{prefix}layer '{layer.name}'"
        if layer.name in shapes:
            raise _Invalid(label, "the name is used by an earlier layer (names must be unique)")
        _check_neuron_place(layer, target, label, last=i == len(layers) - 1)
        shape = tuple(int(s) for s in layer.shape)
        if i == 0:
            for name in ("in_scale", "offset", "value_step"):
                _per_channel(getattr(layer, name), shape, f"{label}.{name}")
            if any(layer.pad) and (len(shape) != 3 or min(layer.input_shape) < 1):
                raise _Invalid(label, f"pad {tuple(layer.pad)} leaves nothing of a {shape} input")
        else:
            _check_branches(layer, shapes, target, label, shape, layers[0].name)
            _per_channel(layer.bias_mant, shape, f"{label}.bias_mant", scalar=False)
            _per_channel(layer.value_step, shape, f"{label}.value_step")
        shapes[layer.name] = shape


def _check_fields(obj, target, label: str) -> None:
    found = field_problems(obj, target)
    if found is not None:
        name, value, problem = found
        raise _Invalid(label, f"{type(obj).__name__}.{name} = {_short(value)} {problem}")


def _short(value) -> str:
    if isinstance(value, np.ndarray):
        return f"array{value.shape}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Formats:
    """The integer formats a layer's fields are checked in: the target's, with the overrides its
    neuron declares (`Neuron.formats`: a scheme whose synapses or bias are not in the target's
    generic formats)."""

    def __init__(self, target, overrides: dict):
        self._target, self._overrides = target, overrides

    def __getattr__(self, name):
        if name in self._overrides:
            return self._overrides[name]
        return getattr(self._target, name)


def _check_neuron_fields(neuron, allowed: set, target, label: str) -> None:
    if not isinstance(neuron, Neuron) or type(neuron) not in allowed:
        names = ", ".join(sorted(c.__name__ for c in allowed))
        raise _Invalid(label, f"neuron {type(neuron).__name__} is not one of this scheme's ({names})")
    _check_fields(neuron, target, label)


def _check_neuron_place(layer, target, label: str, last: bool) -> None:
    neuron = layer.neuron
    relation = neuron.relation_problem(target, tuple(layer.shape))
    if relation is not None:
        raise _Invalid(label, f"{type(neuron).__name__}: {relation}")
    if neuron.is_readout != (last and isinstance(layer, Layer)):
        raise _Invalid(label, "the readout must be the last layer, and only the last" if neuron.is_readout
                       else "the last layer must be a readout")


def _per_channel(a, shape: tuple, label: str, scalar: bool = True) -> None:
    """A per-channel array: shape (C,) (or, with scalar, () or (1,))."""
    got = np.shape(a)
    ok = got == (shape[0],) or (scalar and got in ((), (1,)))
    if not ok:
        raise _Invalid(label, f"has shape {got}, expected ({shape[0]},) for a layer shaped {shape}")


def _check_branches(layer: Layer, shapes: dict, target, label: str, shape: tuple, encoder: str) -> None:
    if not isinstance(layer.branches, list) or not layer.branches:
        raise _Invalid(label, "has no input branches")
    for j, b in enumerate(layer.branches):
        blabel = f"{label} branch {j}"
        if type(b) is not Branch:
            raise _Invalid(blabel, f"is a {type(b).__name__}, expected a Branch")
        formats = Formats(target, layer.neuron.formats(target, from_input=getattr(b, "source", None) == encoder))
        _check_fields(b, formats, blabel)
        if b.source == layer.name:
            raise _Invalid(blabel, "reads the layer itself (a self-loop)")
        if b.source not in shapes:
            raise _Invalid(blabel, f"reads '{b.source}', which is not an earlier layer (unknown, or a cycle)")
        if not isinstance(b.ops, list) or not b.ops:
            raise _Invalid(blabel, "has no synapse ops")
        weighted = [op for op in b.ops if isinstance(op, syn.WEIGHTED)]
        if len(weighted) != 1:
            raise _Invalid(blabel, f"has {len(weighted)} weighted ops (Conv, Dense, ChannelScale); expected 1")
        out = shapes[b.source]
        for k, op in enumerate(b.ops):
            if type(op) not in syn.SYNAPSE_TYPES.values():
                raise _Invalid(f"{blabel} op {k}", f"is a {type(op).__name__}, not a synapse op")
            _check_fields(op, formats, f"{blabel} op {k}")
            out = op_shape(op, out, f"{blabel} op {k} ({type(op).__name__})")
        if out != shape:
            raise _Invalid(blabel, f"produces shape {out}, but the layer is shaped {shape}")


def _window_out(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def op_shape(op, shape: tuple, label: str) -> tuple:
    """The shape an op gives a source of `shape` (arithmetic only), or _Invalid."""
    if isinstance(op, syn.Flatten):
        return (math.prod(shape),)
    if isinstance(op, syn.Dense):
        w = op.weight
        if len(shape) != 1:
            raise _Invalid(label, f"needs a flat input, got shape {shape}")
        if w.ndim != 2 or w.shape[1] != shape[0]:
            raise _Invalid(label, f"weight shaped {w.shape}, expected (outputs, {shape[0]})")
        return (w.shape[0],)
    if isinstance(op, syn.ChannelScale):
        if op.weight.shape != (shape[0],):
            raise _Invalid(label, f"weight shaped {op.weight.shape}, expected ({shape[0]},)")
        return shape
    if len(shape) != 3:
        raise _Invalid(label, f"needs a (C, H, W) input, got shape {shape}")
    c, h, w_ = shape
    if isinstance(op, syn.Conv):
        w = op.weight
        g = op.groups
        if w.ndim != 4 or c % g or w.shape[0] % g or w.shape[1] * g != c:
            raise _Invalid(label, f"weight shaped {w.shape} with groups={g} does not read {c} channels")
        dims = [_window_out(n, k, s, p, d) for n, k, s, p, d in
                zip((h, w_), w.shape[2:], op.stride, op.padding, op.dilation)]
        out = (w.shape[0], *dims)
    elif isinstance(op, syn.MaxPool):
        problem = op.window_problem((h, w_))
        if problem:
            raise _Invalid(label, problem)
        out = (c, *op.out_hw((h, w_)))
    else:       # SumPool
        padding = op.padding
        if any(2 * p > k for p, k in zip(padding, op.kernel)):
            raise _Invalid(label, f"padding {tuple(padding)} is more than half the kernel {tuple(op.kernel)}")
        out = (c, *[_window_out(n, k, s, p) for n, k, s, p in zip((h, w_), op.kernel, op.stride, padding)])
    if min(out) < 1:
        raise _Invalid(label, f"leaves nothing of a {shape} input (output {out})")
    return out


def check_declarations(cls) -> None:
    """Developer check: every field of an IR / neuron dataclass declares what it may hold."""
    from .fields import undeclared_fields
    missing = undeclared_fields(cls)
    if missing:
        raise TypeError(f"{cls.__name__} declares no range for {', '.join(missing)} (use neurodeploy.ir.fields)")


def dataclass_types(graph: SpikingGraph) -> set:
    """Every dataclass type a graph holds (tests use it to check the declarations cover them)."""
    seen, todo = set(), list(graph.layers)
    while todo:
        obj = todo.pop()
        if dataclasses.is_dataclass(obj):
            seen.add(type(obj))
            todo.extend(getattr(obj, f.name) for f in dataclasses.fields(obj))
        elif isinstance(obj, (list, tuple)):
            todo.extend(obj)
    return seen
