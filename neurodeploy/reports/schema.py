"""The JSON schema of the cost report (schema.json) and a validator.

`validate(report)` uses the `jsonschema` package when it is installed; otherwise a small checker of
the subset of JSON Schema (draft 2020-12) that schema.json uses: type, const, enum, required,
properties, additionalProperties, items, minItems, maxItems, minimum, maximum, anyOf, allOf and
local $ref.  Both raise `ReportSchemaError` naming the path of the first problem.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

SCHEMA_PATH = Path(__file__).resolve().parent / "schema.json"
SUPPORTED = {"type", "const", "enum", "required", "properties", "additionalProperties", "items", "minItems",
             "maxItems", "minimum", "maximum", "anyOf", "allOf", "$ref",
             "$schema", "$id", "$defs", "title", "description"}


class ReportSchemaError(ValueError):
    """The report does not match schema.json."""


@lru_cache(maxsize=1)
def load_schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


def validate(report: dict, use_jsonschema: bool | None = None) -> None:
    """Raise ReportSchemaError unless `report` matches schema.json.  `use_jsonschema`: None = when
    installed, True = require it, False = the built-in checker."""
    schema = load_schema()
    if use_jsonschema is not False:
        try:
            import jsonschema
        except ImportError:
            if use_jsonschema:
                raise
        else:
            try:
                jsonschema.validate(report, schema, cls=jsonschema.Draft202012Validator)
            except jsonschema.ValidationError as exc:
                where = "/".join(map(str, exc.absolute_path)) or "(root)"
                raise ReportSchemaError(f"{where}: {exc.message}") from None
            return
    _check(report, schema, schema, "")


def _type_ok(value, name: str) -> bool:
    if name == "null":
        return value is None
    if name == "boolean":
        return isinstance(value, bool)
    if name == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or \
               (isinstance(value, float) and value.is_integer())
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if name == "string":
        return isinstance(value, str)
    if name == "array":
        return isinstance(value, list)
    if name == "object":
        return isinstance(value, dict)
    raise ReportSchemaError(f"schema uses unknown type '{name}'")


def _resolve(ref: str, root: dict) -> dict:
    if not ref.startswith("#/"):
        raise ReportSchemaError(f"only local $ref are supported, not {ref}")
    node = root
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def _check(value, schema: dict, root: dict, path: str) -> None:
    where = path or "(root)"
    unknown = set(schema) - SUPPORTED
    if unknown:
        raise ReportSchemaError(f"schema keyword(s) {sorted(unknown)} not supported by the built-in checker")
    if "$ref" in schema:
        _check(value, _resolve(schema["$ref"], root), root, path)
    for sub in schema.get("allOf", []):
        _check(value, sub, root, path)
    if "anyOf" in schema:
        errors = []
        for sub in schema["anyOf"]:
            try:
                _check(value, sub, root, path)
                break
            except ReportSchemaError as exc:
                errors.append(str(exc))
        else:
            raise ReportSchemaError(f"{where}: matches none of anyOf ({'; '.join(errors)})")
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_type_ok(value, t) for t in names):
            raise ReportSchemaError(f"{where}: {value!r:.60} is not of type {' or '.join(names)}")
    if "const" in schema and value != schema["const"]:
        raise ReportSchemaError(f"{where}: {value!r:.60} is not {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        raise ReportSchemaError(f"{where}: {value!r:.60} is not one of {schema['enum']}")
    if _type_ok(value, "number"):
        if "minimum" in schema and value < schema["minimum"]:
            raise ReportSchemaError(f"{where}: {value} is less than the minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            raise ReportSchemaError(f"{where}: {value} is more than the maximum {schema['maximum']}")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                raise ReportSchemaError(f"{where}: '{key}' is a required property")
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, v in value.items():
            sub_path = f"{path}/{key}" if path else str(key)
            if key in props:
                _check(v, props[key], root, sub_path)
            elif extra is False:
                raise ReportSchemaError(f"{where}: additional property '{key}' is not allowed")
            elif isinstance(extra, dict):
                _check(v, extra, root, sub_path)
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            raise ReportSchemaError(f"{where}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise ReportSchemaError(f"{where}: more than {schema['maxItems']} items")
        if "items" in schema:
            for i, v in enumerate(value):
                _check(v, schema["items"], root, f"{path}/{i}" if path else str(i))
