"""Save / load a `SpikingGraph` as a directory: `ir.json` (structure) + `params.npz` (arrays).

Generic and versioned, in the manner of NIR: every dataclass becomes {"type": ClassName,
...fields}; numpy arrays are stored in the npz under a path-like key and referenced from
the JSON.  Class names are read back through the IR's own types (synapses, layers,
`Readout`) and the neuron types of the registered schemes (`registry.neuron_types`).
The npz is written with fixed timestamps so that the same graph always gives
byte-identical files.  `load` refuses a directory written by another IR version.
"""
from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from pathlib import Path

import numpy as np

from .. import registry
from ..arrays import load_npz
from ..errors import NeurodeployError
from . import neurons, spiking, synapses

IR_FILE, PARAMS_FILE = "ir.json", "params.npz"
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


def _decode(obj, arrays, types: dict):
    if isinstance(obj, list):
        return [_decode(v, arrays, types) for v in obj]
    if isinstance(obj, dict):
        if "array" in obj and len(obj) == 1:
            return arrays[obj["array"]]
        if "tuple" in obj and len(obj) == 1:
            return tuple(_decode(v, arrays, types) for v in obj["tuple"])
        if "dict" in obj and len(obj) == 1:
            return {k: _decode(v, arrays, types) for k, v in obj["dict"].items()}
        if "type" in obj:
            cls = types.get(obj["type"])
            if cls is None:
                raise KeyError(f"unknown type {obj['type']!r} (from a scheme this neurodeploy does not have?)")
            return cls(**{k: _decode(v, arrays, types) for k, v in obj.items() if k != "type"})
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


def save(graph: spiking.SpikingGraph, directory: str | Path) -> None:
    directory = Path(directory)
    arrays: dict = {}
    doc = {
        "format": "neurodeploy-spiking-ir",
        "ir_version": spiking.IR_VERSION,
        "scheme": graph.scheme,
        "target": graph.target,
        "meta": _encode(graph.meta, "meta", arrays),
        "layers": [_encode(l, f"layers.{i}", arrays) for i, l in enumerate(graph.layers)],
    }
    (directory / IR_FILE).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    _write_npz(directory / PARAMS_FILE, arrays)


def load(directory: str | Path) -> spiking.SpikingGraph:
    directory = Path(directory)
    ir_path = directory / IR_FILE
    if not directory.is_dir():
        raise NeurodeployError("not a directory", str(directory),
                               "pass the output directory of `neurodeploy compile`")
    if not ir_path.is_file() or not (directory / PARAMS_FILE).is_file():
        raise NeurodeployError(f"no compiled network here (missing {IR_FILE} or {PARAMS_FILE})",
                               str(directory), "run `neurodeploy compile MODEL -o DIR` first")
    try:
        doc = json.loads(ir_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise NeurodeployError("ir.json is not valid JSON (truncated or corrupted)", str(ir_path),
                               "compile the model again") from None
    if doc.get("format") != "neurodeploy-spiking-ir":
        raise NeurodeployError("not a neurodeploy IR file", str(ir_path), "compile the model again")
    if doc.get("ir_version") != spiking.IR_VERSION:
        raise NeurodeployError(
            f"IR version {doc.get('ir_version')} but this neurodeploy reads version {spiking.IR_VERSION}",
            str(ir_path), "recompile the model with this version of neurodeploy")
    try:
        arrays = load_npz(directory / PARAMS_FILE, "compile the model again")   # sizes checked first
        types = known_types()
        layers = [_decode(l, arrays, types) for l in doc["layers"]]
        meta = _decode(doc["meta"], arrays, types)
    except (KeyError, ValueError, OSError, zipfile.BadZipFile, TypeError) as exc:
        raise NeurodeployError(f"compiled network is damaged ({type(exc).__name__}: {exc})",
                               str(directory), "compile the model again") from None
    return spiking.SpikingGraph(scheme=doc["scheme"], target=doc["target"], layers=layers, meta=meta)
