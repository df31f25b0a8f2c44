"""The spec of a compiled directory (`ir.json` + `params.npz`), generated from the code that writes it.

`ir_spec()` describes, for the IR version this neurodeploy writes (`spiking.IR_VERSION`): the files,
the top-level keys of ir.json, how values are encoded (`ir.serialize`), every type an ir.json may
hold with its fields (read off the dataclasses: the IR's own `InputEncoder`, `Layer`, `Branch`, the
synapse ops, and the neuron types of every registered scheme), which fields are arrays in
params.npz with their dtype, shape and unit, the values each field may hold (its `ir.fields`
declaration, which `load` checks in the target's widths), and the meta keys.  `ir_format_markdown()` renders it
as docs/ir-format.md (scripts/gen_docs.py writes the file; tests/test_docs.py checks that the
committed file is the generated one and that every array and field the serializer writes is in the
spec).
"""
from __future__ import annotations

import dataclasses
import inspect
import typing

from .. import registry
from ..outputs import MANIFEST_FILE
from . import fields as decl
from . import neurons, serialize, spiking, synapses

# Arrays of the IR's own types: (class, field) -> (dtype, shape, unit and meaning).
ARRAYS = {
    ("InputEncoder", "in_scale"): ("float64", "() or (C,)", "input codes per unit of the model's input: "
                                   "code = clip(floor(x * in_scale + offset), 0, code_max)"),
    ("InputEncoder", "offset"): ("float64", "() or (C,)", "codes (0.5 rounds to nearest, 0 floors)"),
    ("InputEncoder", "value_step"): ("float64", "() or (C,)", "model input units per input code step"),
    ("Layer", "bias_mant"): ("int64", "(C,) or (F,)", "integer bias mantissa per channel or feature; "
                             "bias = bias_mant << bias_exp, in the layer's integer state units"),
    ("Layer", "value_step"): ("float64", "() or (C,)", "ANN value of one code step of the layer (the readout: "
                              "of one state unit); reports and verify only, never on the chip"),
    ("Conv", "weight"): ("int64", "(C_out, C_in / groups, kH, kW)", "integer weight mantissas; the branch "
                         "result is shifted left by the branch's weight_exp"),
    ("Dense", "weight"): ("int64", "(out, in)", "integer weight mantissas (PyTorch layout)"),
    ("ChannelScale", "weight"): ("int64", "(C,)", "integer per-channel multipliers (identity or scaled shortcuts)"),
}
# Arrays of neuron fields follow their names: integer mantissas are int64, per channel or per neuron.
NEURON_ARRAY_SUFFIXES = {"_mant": ("int64", "(C,) or the layer shape", "integer mantissa per channel or neuron")}

TOP_LEVEL = {
    "format": "always \"neurodeploy-spiking-ir\"",
    "ir_version": f"the IR version, {spiking.IR_VERSION} for this spec; `load` refuses any other",
    "scheme": "the coding scheme's registry name (`neurodeploy.registry.get_scheme`)",
    "target": "the target's name (targets/<name>.toml)",
    "layers": "the layers in topological order: an InputEncoder first, then Layers; the last one is the readout",
    "meta": "what the compile recorded (below), encoded like every other value",
    "checksums": f"{{\"{serialize.PARAMS_FILE}\": sha256 of its bytes, \"{serialize.IR_FILE}\": sha256 of this "
                 "document without its checksums (keys sorted, compact JSON)}: `load` refuses a directory "
                 "edited or damaged after compile",
}

META = {
    "neurodeploy_version": "the neurodeploy that compiled it",
    "model": "{\"file\": name of the compiled model file, \"sha256\": its hash}",
    "options": "the compile options with the values used (target, scheme, the options the scheme takes, "
               "calibration_samples, chips); an option the scheme does not take is refused, not recorded",
    "target_spec": "the target file's contents (chip limits and integer widths) at compile time",
    "allocation": "cores per layer and in total from the greedy core allocation, the chips they need "
                  "(chips) and the chips given (chips_available: a number, or \"auto\")",
    "latency_steps": "time steps from the first input spike to the readout's value",
    "throughput_steps": "time steps between samples when pipelined",
    "time_steps_per_layer": "layer -> its time steps (where the scheme has per-layer windows)",
    "quantisation": "layer -> what quantisation chose and cost (value_step, weight_rel_error, ...)",
    "notes": "the compile's notes to the reader (list of strings)",
    "front_end_notes": "what the front end changed reading the model (list of strings; when it changed anything)",
}

FILES = {
    serialize.IR_FILE: "the structure: JSON, sorted keys, one space indent; arrays referenced by key",
    serialize.PARAMS_FILE: "the arrays: an uncompressed .npz (zip of .npy, no pickles, fixed timestamps) whose "
                           "keys are the JSON paths of the values they stand for",
    "summary.md": "the compile summary for people (not read back)",
    MANIFEST_FILE: "written by `compile -o` / `CompiledNet.save`: the tool, its version, the command and every "
                   "file's size and sha256; a later -o replaces the directory only while it holds exactly "
                   "these files, unchanged (not read by `load`)",
}


def _type_name(tp) -> str:
    if isinstance(tp, str):
        return tp
    if tp is type(None):
        return "None"
    origin = typing.get_origin(tp)
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(tp))
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{args}]" if name not in ("Union", "UnionType") else " | ".join(
            _type_name(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp)).replace("ndarray", "array")


def _fields(cls) -> list[dict]:
    try:
        hints = typing.get_type_hints(cls, vars(__import__(cls.__module__, fromlist=["x"])))
    except Exception:               # annotations that do not evaluate: use their text
        hints = {}
    out = []
    for f in dataclasses.fields(cls):
        tp = hints.get(f.name, f.type)
        default = (f.default if f.default is not dataclasses.MISSING else
                   "(computed)" if f.default_factory is not dataclasses.MISSING else None)
        out.append({"name": f.name, "type": _type_name(tp), "required": f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING, "default": default,
                    "allowed": allowed(decl.declaration(f))})
    return out


def _bound(b) -> str:
    """A declared bound in words: a number, or the target's width it names (`state_max`)."""
    return "" if b is None else str(b) if isinstance(b, int) else f"-{b[1:]}" if b.startswith("-") else b


def allowed(check) -> str:
    """What a field's declaration (`ir.fields`) lets it hold, in words; names like `state_max` are
    the target's widths (targets/<name>.toml), resolved against the compiled network's target."""
    if check is None:
        return ""
    if isinstance(check, decl.IntArray):
        return f"integers {_bound(check.lo)}..{_bound(check.hi)}"
    if isinstance(check, decl.Int):
        return f"{_bound(check.lo)}..{_bound(check.hi)}"
    if isinstance(check, decl.Real):
        sign = " > 0" if check.positive else " >= 0" if check.nonnegative else ""
        return f"finite{sign}"
    if isinstance(check, decl.Choice):
        return " or ".join(f"`{v!r}`" for v in check.values)
    if isinstance(check, decl.Flag):
        return "true or false"
    if isinstance(check, decl.Text):
        return "a name (1..1000 characters)" if not check.may_be_empty else "a string (0..1000 characters)"
    if isinstance(check, decl.Shape):
        return "(F,) or (C, H, W), sizes >= 1"
    if isinstance(check, decl.Ints):
        return f"{check.n} integers {check.lo}..{check.hi}"
    return ""           # Nested: an object the validator checks by its own type


def _summary(cls) -> str:
    doc = inspect.getdoc(cls) or ""
    return " ".join(doc.split("\n\n")[0].split())


def array_of(cls_name: str, field: str, type_name: str = "array") -> tuple | None:
    """(dtype, shape, meaning) of a field stored in params.npz, or None when it is not an array: the
    IR's own array fields (ARRAYS), and neuron fields declared as arrays whose names say what they hold."""
    if (cls_name, field) in ARRAYS:
        return ARRAYS[(cls_name, field)]
    if "array" not in type_name:
        return None
    for suffix, spec in NEURON_ARRAY_SUFFIXES.items():
        if field.endswith(suffix):
            return spec
    return None


def ir_spec() -> dict:
    """The spec as data (what docs/ir-format.md shows)."""
    types = {}
    own = [spiking.InputEncoder, spiking.Layer, spiking.Branch, *synapses.SYNAPSE_TYPES.values(), neurons.Readout]
    for cls in own:
        types[cls.__name__] = {"kind": "ir", "summary": _summary(cls), "fields": _fields(cls)}
    for scheme in registry.all_schemes():
        for cls in scheme.neuron_types:
            types.setdefault(cls.__name__, {"kind": "neuron", "schemes": [], "summary": _summary(cls),
                                            "fields": _fields(cls)})["schemes"].append(scheme.name)
    for name, t in types.items():
        for f in t["fields"]:
            arr = array_of(name, f["name"], f["type"])
            f["array"] = None if arr is None else {"dtype": arr[0], "shape": arr[1], "unit": arr[2]}
    return {"format": "neurodeploy-spiking-ir", "ir_version": spiking.IR_VERSION, "files": FILES,
            "top_level": TOP_LEVEL, "types": types, "meta": META}


def _default(v) -> str:
    return "" if v is None else f"`{v!r}`" if not isinstance(v, str) or v != "(computed)" else v


def ir_format_markdown() -> str:
    s = ir_spec()
    lines = [f"# The compiled network format, IR version {s['ir_version']}", "",
             "<!-- generated by scripts/gen_docs.py from neurodeploy/ir/spec.py and the registered neuron "
             "dataclasses; edit those, not this file -->", "",
             "`neurodeploy compile ... -o DIR` writes a directory that `neurodeploy simulate / verify / report / "
             "export` and `neurodeploy.load(DIR)` read back (`neurodeploy/ir/serialize.py`). Its files:", ""]
    lines += [f"- `{k}`: {v}" for k, v in s["files"].items()]
    lines += ["", "## ir.json", "", "| key | meaning |", "|---|---|"]
    lines += [f"| `{k}` | {v} |" for k, v in s["top_level"].items()]
    lines += ["", "### How values are encoded", "",
              "- a dataclass (layer, branch, synapse op, neuron) is an object `{\"type\": ClassName, <field>: value, "
              "...}`; `type` names one of the types below",
              "- an array is `{\"array\": KEY}`: KEY is the value's path from the top (`layers.1.bias_mant`, "
              "`layers.2.branches.0.ops.0.weight`, `meta.quantisation.conv1.x`) and its key in params.npz",
              "- a tuple is `{\"tuple\": [...]}`, a dict `{\"dict\": {...}}`, a list a JSON list; numbers and "
              "strings are themselves", "",
              "### Meta keys", "", "Every compile records these (a scheme adds its own, e.g. `sws`, "
              "`payload_bits`, `sdnn_input_shift`):", ""]
    lines += [f"- `{k}`: {v}" for k, v in s["meta"].items()]
    lines += ["", "## params.npz", "", "Every array of ir.json, under its key. Fields stored as arrays:", "",
              "| type | field | dtype | shape | unit / meaning |", "|---|---|---|---|---|"]
    for name, t in s["types"].items():
        for f in t["fields"]:
            if f["array"]:
                a = f["array"]
                lines.append(f"| {name} | `{f['name']}` | {a['dtype']} | {a['shape']} | {a['unit']} |")
    lines += ["", "A neuron field declared as an array whose name ends in `_mant` is an int64 array per channel "
                  "or per neuron. Integer fields are the chip's integers (mantissas, exponents as powers of two, "
                  "widths in bits, step counts); floats are host-side conversions.",
              "", "## What `load` checks", "",
              "A compiled directory is the user's file; `load` (`neurodeploy/ir/serialize.py`) trusts nothing in it "
              "and refuses, in one line naming the file and field, anything that is not what `save` writes:", "",
              "1. ir.json parses into an object with exactly the top-level keys above, this IR version and a "
              "registered scheme;",
              "2. its `checksums` match (params.npz's bytes, ir.json's own content): an edited or damaged "
              "artifact is named as such (they detect edits and damage, not a forger);",
              "3. every object is a known type with exactly its fields, every array reference names an array "
              "of params.npz, and the recorded `target_spec` passes the target schema;",
              "4. `ir.validate`: every field holds what its `allowed` column says, where names such as "
              "`state_max`, `v_th_mant_max`, `decay_max` are the widths of the network's target (its "
              "`target_spec`), except where a neuron type sets its own layer's formats (`Neuron.formats`: sdnn's "
              "weights are 2 x a mantissa, its biases unshifted); each neuron type's relations between fields (e.g. a code fits its time "
              "steps); one encoder, the readout last, unique names, no self-loops or cycles; shapes "
              "consistent from layer to layer.",
              "", "## Types", ""]
    for kind, title in (("ir", "The IR's own types"), ("neuron", "Neuron types of the registered schemes")):
        lines += [f"### {title}", ""]
        for name, t in s["types"].items():
            if t["kind"] != kind:
                continue
            used = f" (scheme{'s' if len(t['schemes']) > 1 else ''} {', '.join(t['schemes'])})" if kind == "neuron" else ""
            lines += [f"#### `{name}`{used}", "", t["summary"], ""]
            if t["fields"]:
                lines += ["| field | type | allowed | default | stored |", "|---|---|---|---|---|"]
                for f in t["fields"]:
                    stored = f"params.npz, {f['array']['dtype']}" if f["array"] else "ir.json"
                    lines.append(f"| `{f['name']}` | {f['type'].replace('|', '&#124;')} | {f['allowed']} | "
                                 f"{'required' if f['required'] else _default(f['default'])} | {stored} |")
            else:
                lines.append("No fields.")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"
