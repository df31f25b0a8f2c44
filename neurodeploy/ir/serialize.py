"""Save / load a `SpikingGraph` as a directory: `ir.json` (structure) + `params.npz` (arrays).

Generic and versioned, in the manner of NIR: every dataclass becomes {"type": ClassName,
...fields}; numpy arrays are stored in the npz under a path-like key and referenced from
the JSON.  Class names are read back through the IR's own types (synapses, layers,
`Readout`) and the neuron types of the registered schemes (`registry.neuron_types`).
The npz is written with fixed timestamps so that the same graph always gives
byte-identical files.

A compiled directory is the user's file, so `load` trusts nothing in it:

1. ir.json must parse (at most `limits.MAX_IR_NESTING` levels deep) into the document `save`
   writes: an object with exactly its keys, this IR version, a registered scheme;
2. its `checksums` (sha256 of params.npz's bytes, and of ir.json's own content without the
   checksums: `content_sha256`) must match, so an artifact edited or damaged after compile is
   named as such ("params.npz was modified after compile: recompile").  The checksums detect
   edits and damage, not a forger: whoever recomputes them gets through to step 3;
3. every object must be a known IR type with exactly its fields, every array reference must name
   an array of params.npz, and the recorded target_spec (else the target file of that name) must
   pass the target schema;
4. `ir.validate` then checks every value against its declared range in that target's widths, the
   graph (one encoder, readout last, unique names, no self-loops or cycles) and the shapes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np

from .. import registry
from ..arrays import load_npz
from ..errors import NeurodeployError
from ..fsutil import file_sha256
from ..limits import MAX_IR_NESTING
from . import neurons, spiking, synapses

IR_FILE, PARAMS_FILE = "ir.json", "params.npz"
FORMAT = "neurodeploy-spiking-ir"
DOC_KEYS = ("format", "ir_version", "scheme", "target", "meta", "layers", "checksums")
RECOMPILE = "recompile the model (neurodeploy compile MODEL -o DIR)"
_IR_TYPES = {**synapses.SYNAPSE_TYPES, neurons.Readout.__name__: neurons.Readout,
             **{c.__name__: c for c in (spiking.Branch, spiking.InputEncoder, spiking.Layer)}}


def known_types() -> dict[str, type]:
    """Class name -> class of everything an ir.json may hold: the IR's own dataclasses and the
    neuron types of every registered scheme."""
    return {**registry.neuron_types(), **_IR_TYPES}


def _encode(obj, key: str, arrays: dict):
    if dataclasses.is_dataclass(obj):
        out = {"type": type(obj).__name__}
        for f in dataclasses.fields(obj):
            out[f.name] = _encode(getattr(obj, f.name), f"{key}.{f.name}", arrays)
        return out
    if isinstance(obj, np.ndarray):
        arrays[key] = obj
        return {"array": key}
    if isinstance(obj, (list, tuple)):
        return {"tuple": [_encode(v, f"{key}.{i}", arrays) for i, v in enumerate(obj)]} \
            if isinstance(obj, tuple) else [_encode(v, f"{key}.{i}", arrays) for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        return {"dict": {k: _encode(v, f"{key}.{k}", arrays) for k, v in obj.items()}}
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    return obj


def _write_npz(path: Path, arrays: dict) -> None:
    """np.savez with fixed zip timestamps (deterministic bytes)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for key in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def content_sha256(doc: dict) -> str:
    """sha256 of an ir.json document's content without its checksums (keys sorted, compact)."""
    body = {k: v for k, v in doc.items() if k != "checksums"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def save(graph: spiking.SpikingGraph, directory: str | Path) -> None:
    directory = Path(directory)
    arrays: dict = {}
    doc = {
        "format": FORMAT,
        "ir_version": spiking.IR_VERSION,
        "scheme": graph.scheme,
        "target": graph.target,
        "meta": _encode(graph.meta, "meta", arrays),
        "layers": [_encode(l, f"layers.{i}", arrays) for i, l in enumerate(graph.layers)],
    }
    _write_npz(directory / PARAMS_FILE, arrays)
    doc["checksums"] = {PARAMS_FILE: file_sha256(directory / PARAMS_FILE), IR_FILE: content_sha256(doc)}
    (directory / IR_FILE).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")


class _Damaged(Exception):
    """A structural problem of ir.json: where in the document, and what."""

    def __init__(self, where: str, what: str):
        super().__init__(what)
        self.where, self.what = where, what


def _nesting(doc) -> int:
    """How deep JSON values nest (iterative: a hostile file cannot exhaust the stack here)."""
    deepest, todo = 0, [(doc, 1)]
    while todo:
        obj, depth = todo.pop()
        deepest = max(deepest, depth)
        if depth > MAX_IR_NESTING:
            return depth
        children = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, list) else ()
        todo.extend((c, depth + 1) for c in children)
    return deepest


def _decode(obj, arrays: dict, types: dict, path: str):
    """The IR value of a JSON value, refusing anything `_encode` does not write."""
    if isinstance(obj, list):
        return [_decode(v, arrays, types, f"{path}[{i}]") for i, v in enumerate(obj)]
    if not isinstance(obj, dict):
        return obj
    if set(obj) == {"array"}:
        key = obj["array"]
        if not isinstance(key, str) or key not in arrays:
            raise _Damaged(path, f"refers to array {key!r}, which params.npz does not hold")
        return arrays[key]
    if set(obj) == {"tuple"}:
        if not isinstance(obj["tuple"], list):
            raise _Damaged(path, "a tuple must hold a list")
        return tuple(_decode(v, arrays, types, f"{path}[{i}]") for i, v in enumerate(obj["tuple"]))
    if set(obj) == {"dict"}:
        if not isinstance(obj["dict"], dict):
            raise _Damaged(path, "a dict must hold an object")
        return {k: _decode(v, arrays, types, f"{path}.{k}") for k, v in obj["dict"].items()}
    if "type" not in obj:
        raise _Damaged(path, f"an object with keys {sorted(obj)[:5]} is no IR value "
                             "(expected 'type', 'array', 'tuple' or 'dict')")
    name = obj["type"]
    cls = types.get(name) if isinstance(name, str) else None
    if cls is None:
        raise _Damaged(path, f"unknown type {name!r} (from a scheme this neurodeploy does not have?)")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    given = set(obj) - {"type"}
    unknown = sorted(given - set(fields))
    if unknown:
        raise _Damaged(path, f"{name} has no field {unknown[0]!r}")
    missing = [n for n, f in fields.items() if n not in given and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise _Damaged(path, f"{name} lacks its field {missing[0]!r}")
    return cls(**{k: _decode(v, arrays, types, f"{path}.{k}") for k, v in obj.items() if k != "type"})


def _read_doc(ir_path: Path) -> dict:
    try:
        doc = json.loads(ir_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise NeurodeployError(f"{IR_FILE} is not valid JSON (truncated or corrupted)", str(ir_path),
                               RECOMPILE) from None
    except RecursionError:
        raise NeurodeployError(f"{IR_FILE} nests too deeply to be a compiled network", str(ir_path),
                               RECOMPILE) from None
    if not isinstance(doc, dict):
        raise NeurodeployError(f"{IR_FILE} holds a JSON {type(doc).__name__}, not the object neurodeploy writes",
                               str(ir_path), RECOMPILE)
    if doc.get("format") != FORMAT:
        raise NeurodeployError("not a neurodeploy IR file", str(ir_path), RECOMPILE)
    if doc.get("ir_version") != spiking.IR_VERSION:
        raise NeurodeployError(
            f"IR version {doc.get('ir_version')!r} but this neurodeploy reads version {spiking.IR_VERSION}",
            str(ir_path), "recompile the model with this version of neurodeploy")
    depth = _nesting(doc)
    if depth > MAX_IR_NESTING:
        raise NeurodeployError(f"{IR_FILE} nests more than {MAX_IR_NESTING} levels deep: not a compiled network",
                               str(ir_path), RECOMPILE)
    keys = set(doc)
    if keys != set(DOC_KEYS):
        extra, lacking = sorted(keys - set(DOC_KEYS)), sorted(set(DOC_KEYS) - keys)
        what = f"lacks the key {lacking[0]!r}" if lacking else f"has an unknown key {extra[0]!r}"
        raise NeurodeployError(f"{IR_FILE} {what}", str(ir_path), RECOMPILE)
    for key, kind in (("scheme", str), ("target", str), ("layers", list), ("meta", dict), ("checksums", dict)):
        if not isinstance(doc[key], kind):
            raise NeurodeployError(f"{IR_FILE}: {key} must be a JSON {kind.__name__.replace('str', 'string')}"
                                   f"{'' if kind is not dict else ' (object)'}, not {type(doc[key]).__name__}",
                                   str(ir_path), RECOMPILE)
    if doc["scheme"] not in registry.scheme_names():
        raise NeurodeployError(f"compiled with the scheme '{doc['scheme']}', which this neurodeploy does not have",
                               str(ir_path), f"available schemes: {', '.join(sorted(registry.scheme_names()))}")
    return doc


def _check_checksums(doc: dict, directory: Path) -> None:
    sums = doc["checksums"]
    for name in (IR_FILE, PARAMS_FILE):
        value = sums.get(name)
        if not isinstance(value, str) or len(value) != 64:
            raise NeurodeployError(f"{IR_FILE} records no valid checksum of {name}", str(directory / IR_FILE),
                                   RECOMPILE)
    if content_sha256(doc) != sums[IR_FILE]:
        raise NeurodeployError(f"{IR_FILE} was modified after compile (its content no longer matches its "
                               "recorded sha256)", str(directory / IR_FILE), RECOMPILE)
    if file_sha256(directory / PARAMS_FILE) != sums[PARAMS_FILE]:
        raise NeurodeployError(f"{PARAMS_FILE} was modified after compile (its sha256 differs from the one "
                               f"{IR_FILE} records)", str(directory / PARAMS_FILE), RECOMPILE)


def load(directory: str | Path) -> spiking.SpikingGraph:
    """A compiled network from its directory, checked as the module docstring says."""
    from ..target import load_target, target_from_dict
    from .validate import validate_parts
    directory = Path(directory)
    ir_path = directory / IR_FILE
    if not directory.is_dir():
        raise NeurodeployError("not a directory", str(directory),
                               "pass the output directory of `neurodeploy compile`")
    if not ir_path.is_file() or not (directory / PARAMS_FILE).is_file():
        raise NeurodeployError(f"no compiled network here (missing {IR_FILE} or {PARAMS_FILE})",
                               str(directory), "run `neurodeploy compile MODEL -o DIR` first")
    doc = _read_doc(ir_path)
    _check_checksums(doc, directory)
    arrays = load_npz(directory / PARAMS_FILE, RECOMPILE)      # header sizes checked before allocating
    types = known_types()
    try:
        layers = _decode(doc["layers"], arrays, types, "layers")
        meta = _decode(doc["meta"], arrays, types, "meta")
    except _Damaged as bad:
        raise NeurodeployError(f"{bad.where}: {bad.what}", str(ir_path), RECOMPILE) from None
    if not isinstance(meta, dict):
        raise NeurodeployError("meta must be an object", str(ir_path), RECOMPILE)
    if "target_spec" in meta:
        target = target_from_dict(meta["target_spec"], f"{ir_path}: meta.target_spec")
    else:       # a graph built without compile_graph (e.g. cuba's compile_lif): its target by name
        target = load_target(doc["target"])
    if target.name != doc["target"]:
        raise NeurodeployError(f"the recorded target '{target.name}' is not the network's '{doc['target']}'",
                               str(ir_path), RECOMPILE)
    validate_parts(doc["scheme"], layers, meta, target, str(ir_path),
                   "the compiled directory was edited or damaged: " + RECOMPILE)
    return spiking.SpikingGraph(scheme=doc["scheme"], target=doc["target"], layers=layers, meta=meta)
