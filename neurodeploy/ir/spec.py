"""The spec of a compiled directory (`ir.json` + `params.npz`), generated from the code that writes it.

`ir_spec()` describes, for the IR version this neurodeploy writes (`spiking.IR_VERSION`): the files,
the top-level keys of ir.json, how values are encoded (`ir.serialize`), every type an ir.json may
hold with its fields (read off the dataclasses: the IR's own `InputEncoder`, `Layer`, `Branch`, the
synapse ops, and the neuron types of every registered scheme), which fields are arrays in
params.npz with their dtype, shape and unit, and the meta keys.  `ir_format_markdown()` renders it
as docs/ir-format.md (scripts/gen_docs.py writes the file; tests/test_docs.py checks that the
committed file is the generated one and that every array and field the serializer writes is in the
spec).
"""
from __future__ import annotations

import dataclasses
import inspect
import typing

from .. import registry
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
}

META = {
    "neurodeploy_version": "the neurodeploy that compiled it",
    "model": "{\"file\": name of the compiled model file, \"sha256\": its hash}",
    "options": "the compile options as given (target, scheme, the scheme's options, calibration_samples, chips)",
    "target_spec": "the target file's contents (chip limits and integer widths) at compile time",
    "allocation": "cores per layer and in total from the greedy core allocation",
    "latency_steps": "time steps from the first input spike to the readout's value",
    "throughput_steps": "time steps between samples when pipelined",
    "time_steps_per_layer": "layer -> its time steps (where the scheme has per-layer windows)",
    "quantisation": "layer -> what quantisation chose and cost (value_step, weight_rel_error, ...)",
    "notes": "the compile's notes to the reader (list of strings)",
}

FILES = {
    serialize.IR_FILE: "the structure: JSON, sorted keys, one space indent; arrays referenced by key",
    serialize.PARAMS_FILE: "the arrays: an uncompressed .npz (zip of .npy, no pickles, fixed timestamps) whose "
                           "keys are the JSON paths of the values they stand for",
    "summary.md": "the compile summary for people (not read back)",
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
                    and f.default_factory is dataclasses.MISSING, "default": default})
    return out


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
              "", "## Types", ""]
    for kind, title in (("ir", "The IR's own types"), ("neuron", "Neuron types of the registered schemes")):
        lines += [f"### {title}", ""]
        for name, t in s["types"].items():
            if t["kind"] != kind:
                continue
            used = f" (scheme{'s' if len(t['schemes']) > 1 else ''} {', '.join(t['schemes'])})" if kind == "neuron" else ""
            lines += [f"#### `{name}`{used}", "", t["summary"], ""]
            if t["fields"]:
                lines += ["| field | type | default | stored |", "|---|---|---|---|"]
                for f in t["fields"]:
                    stored = f"params.npz, {f['array']['dtype']}" if f["array"] else "ir.json"
                    lines.append(f"| `{f['name']}` | {f['type'].replace('|', '&#124;')} | "
                                 f"{'required' if f['required'] else _default(f['default'])} | {stored} |")
            else:
                lines.append("No fields.")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"
