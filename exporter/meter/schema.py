"""Every event checked against OpenMeter's ingest schema before it is sent.

Why: OpenMeter refuses a whole batch for one bad event, and the collectors' presets drop
events that fail their schema silently; an event the meter built wrong must instead be
kept, with the reason, where a person looks (the spool's ``poison/``), and never sent.
The schema is OpenMeter's own ``Event`` (``openmeter-ingest-event.schema.json`` beside
this module, provenance in tests/support/vendor-specs/README.md), interpreted here for
the keywords it uses (a schema with any other keyword is refused at start, so an update
cannot silently weaken the check), with the date-time pattern of the validator
OpenMeter runs. On top of it the meter's own promise: every number in ``data`` is finite
and not negative, and no value is null.
"""

from __future__ import annotations

import math
import re
from functools import cache
from importlib import resources
from typing import Any

import orjson

SCHEMA_FILE = "openmeter-ingest-event.schema.json"
DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?$")
_NO_SPACE = re.compile(r"^\S+$")
_FORMATS = {
    "date-time": DATE_TIME,
    "uri-reference": _NO_SPACE,
    "uri": re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S*$"),
}
_ANNOTATIONS = frozenset(
    {"$schema", "$id", "$comment", "$defs", "title", "description", "default", "examples"}
)
_KNOWN = frozenset(
    {"type", "required", "properties", "minLength", "enum", "format", "additionalProperties"}
)
_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "object": (dict,),
    "null": (type(None),),
    "array": (list,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


class SchemaError(Exception):
    """The shipped schema uses a keyword this checker does not know."""


def _check_keywords(schema: dict[str, Any], where: str) -> None:
    unknown = set(schema) - _KNOWN - _ANNOTATIONS
    if unknown:
        raise SchemaError(f"{where}: unsupported keyword(s) {sorted(unknown)}")
    for name, sub in schema.get("properties", {}).items():
        _check_keywords(sub, f"{where}/properties/{name}")


@cache
def ingest_schema() -> dict[str, Any]:
    text = resources.files(__package__).joinpath(SCHEMA_FILE).read_bytes()
    schema: dict[str, Any] = orjson.loads(text)
    _check_keywords(schema, SCHEMA_FILE)
    return schema


def _type_ok(value: Any, expected: str | list[str]) -> bool:
    names = [expected] if isinstance(expected, str) else expected
    for name in names:
        if isinstance(value, bool) and name in ("integer", "number"):
            continue
        if isinstance(value, _TYPES[name]):
            return True
    return False


def _problem(schema: dict[str, Any], value: Any, where: str) -> str | None:
    if "type" in schema and not _type_ok(value, schema["type"]):
        return f"{where}: {value!r} is not of type {schema['type']}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{where}: {value!r} is not one of {schema['enum']}"
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            return f"{where}: {value!r} is too short"
        pattern = _FORMATS.get(schema.get("format", ""))
        if pattern is not None and not pattern.match(value):
            return f"{where}: {value!r} is not a {schema['format']}"
    if isinstance(value, dict):
        for name in schema.get("required", ()):
            if name not in value:
                return f"{where}: {name!r} is a required property"
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                found = _problem(sub, value[name], f"{where}/{name}")
                if found is not None:
                    return found
    return None


def _data_problem(data: Any) -> str | None:
    if not isinstance(data, dict):
        return None
    for key, value in data.items():
        if value is None:
            return f"data/{key}: null"
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            if not math.isfinite(value) or value < 0:
                return f"data/{key}: {value!r} is negative or not finite"
        elif isinstance(value, dict):
            found = _data_problem(value)
            if found is not None:
                return f"data/{key}/{found.removeprefix('data/')}"
    return None


def problem(event: dict[str, Any]) -> str | None:
    """Why OpenMeter (or the meter's own rules) would refuse ``event``; None if valid."""
    return _problem(ingest_schema(), event, "event") or _data_problem(event.get("data"))
