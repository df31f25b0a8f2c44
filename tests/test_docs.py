"""docs/api.md and docs/ir-format.md are what the code says (scripts/gen_docs.py --check), every option
of `neurodeploy report / compare / export` is a parameter of nd.report / nd.compare / nd.export, and
the IR spec matches what the serializer writes for a network of every scheme."""
import importlib.util
import json

import numpy as np
import pytest

from conftest import ROOT
from digits_nets import NETS
from neurodeploy import registry
from neurodeploy.ir import serialize, spiking
from neurodeploy.ir.spec import ir_spec


def _gen_docs():
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_committed_docs_are_the_generated_ones():
    for path, text in _gen_docs().generated().items():
        assert path.is_file(), f"{path} missing: run python scripts/gen_docs.py"
        assert path.read_text() == text, f"{path.name} is out of date: run python scripts/gen_docs.py"


@pytest.mark.parametrize("command", ["report", "compare", "export", "compile", "simulate", "verify"])
def test_every_option_of_the_command_is_a_parameter(command):
    gen = _gen_docs()
    missing = [flag for flag, py, _ in gen.cli_options(command) if gen.parameter_of(command, py) == "MISSING"]
    assert missing == []
    if command in ("report", "compare", "export"):       # these three: every option, nothing command-only
        only = [flag for flag, py, _ in gen.cli_options(command) if "command only" in gen.parameter_of(command, py)]
        assert only in ([], ["--json"]), only


def _walk(obj, arrays, owner, field, seen):
    """Collect (type, field) -> [(dtype, ndim)] of every array and type -> field names of every object."""
    if isinstance(obj, list):
        for v in obj:
            _walk(v, arrays, owner, field, seen)
    elif isinstance(obj, dict):
        if set(obj) == {"array"}:
            a = arrays.pop(obj["array"])
            seen["arrays"].setdefault((owner, field), set()).add((str(a.dtype), a.ndim))
        elif set(obj) == {"tuple"}:
            _walk(obj["tuple"], arrays, owner, field, seen)
        elif set(obj) == {"dict"}:
            for v in obj["dict"].values():
                _walk(v, arrays, owner, field, seen)
        elif "type" in obj:
            seen["objects"].setdefault(obj["type"], set()).add(frozenset(k for k in obj if k != "type"))
            for k, v in obj.items():
                if k != "type":
                    _walk(v, arrays, obj["type"], k, seen)


def test_spec_matches_what_the_serializer_writes(tmp_path):
    spec = ir_spec()
    types = spec["types"]
    assert spec["ir_version"] == spiking.IR_VERSION
    # every neuron type of every registered scheme is specified, and nothing else is called a neuron
    assert {n for n, t in types.items() if t["kind"] == "neuron"} == set(registry.neuron_types())
    # every neuron field says what it may hold (its ir.fields declaration, which load checks)
    unsaid = [(n, f["name"]) for n, t in types.items() if t["kind"] == "neuron" for f in t["fields"] if not f["allowed"]]
    assert not unsaid, unsaid
    seen = {"arrays": {}, "objects": {}}
    for name, make in NETS.items():
        out = tmp_path / name
        out.mkdir()
        serialize.save(make(), out)
        doc = json.loads((out / serialize.IR_FILE).read_text())
        assert set(doc) == set(spec["top_level"]), name
        assert doc["format"] == spec["format"] and doc["ir_version"] == spec["ir_version"]
        with np.load(out / serialize.PARAMS_FILE, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        _walk(doc["layers"], arrays, None, None, seen)
        _walk(doc["meta"], arrays, "meta", "meta", seen)
        assert not arrays, f"{name}: arrays in params.npz that ir.json does not reference: {sorted(arrays)}"
        assert set(doc["meta"]["dict"]) >= {"latency_steps", "throughput_steps", "quantisation"}, name
    # every object the serializer wrote is a specified type with exactly the specified fields
    for tname, field_sets in seen["objects"].items():
        assert tname in types, tname
        names = {f["name"] for f in types[tname]["fields"]}
        required = {f["name"] for f in types[tname]["fields"] if f["required"]}
        for fields in field_sets:
            assert required <= fields <= names, (tname, sorted(fields), sorted(names))
    # every array has the specified dtype, and every field the spec stores in params.npz was an array
    for (owner, field), kinds in seen["arrays"].items():
        if owner == "meta":
            assert all(dt in ("int64", "float64") for dt, _ in kinds), (field, kinds)
            continue
        spec_field = next(f for f in types[owner]["fields"] if f["name"] == field)
        assert spec_field["array"] is not None, (owner, field)
        assert {dt for dt, _ in kinds} == {spec_field["array"]["dtype"]}, (owner, field, kinds)
    specified = {(t, f["name"]) for t, v in types.items() for f in v["fields"] if f["array"]}
    written = {k for k in seen["arrays"] if k[0] != "meta"}
    present = set(seen["objects"])
    assert {k for k in specified if k[0] in present and k[0] != "ChannelScale"} <= written, \
        sorted(specified - written)
