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
from dataclasses import dataclass
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


_ABSENT = object()


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


@dataclass(frozen=True)
class _Property:
    name: str
    types: tuple[type, ...]
    excluded: tuple[type, ...]
    min_length: int
    enum: tuple[object, ...] | None
    pattern: re.Pattern[str] | None
    schema_type: object


@dataclass(frozen=True)
class _Compiled:
    """The schema as flat checks: a meter validates thousands of events per window."""

    required: tuple[str, ...]
    required_set: frozenset[str]
    properties: tuple[_Property, ...]


def _types(expected: str | list[str]) -> tuple[tuple[type, ...], tuple[type, ...]]:
    names = [expected] if isinstance(expected, str) else expected
    found = tuple(t for name in names for t in _TYPES[name])
    numeric = any(name in ("integer", "number") for name in names)
    boolean = "boolean" in names
    return found, ((bool,) if numeric and not boolean else ())


@cache
def _compiled() -> _Compiled:
    schema = ingest_schema()
    props = []
    for name, sub in schema.get("properties", {}).items():
        types, excluded = _types(sub["type"]) if "type" in sub else ((object,), ())
        enum = tuple(sub["enum"]) if "enum" in sub else None
        props.append(
            _Property(
                name=name,
                types=types,
                excluded=excluded,
                min_length=int(sub.get("minLength", 0)),
                enum=enum,
                pattern=_FORMATS.get(sub.get("format", "")),
                schema_type=sub.get("type"),
            )
        )
    required = tuple(schema.get("required", ()))
    return _Compiled(required, frozenset(required), tuple(props))


def _problem(event: Any) -> str | None:
    if not isinstance(event, dict):
        return f"event: {type(event).__name__} is not an object"
    compiled = _compiled()
    if not event.keys() >= compiled.required_set:
        missing = next(n for n in compiled.required if n not in event)
        return f"event: {missing!r} is a required property"
    for p in compiled.properties:
        value = event.get(p.name, _ABSENT)
        if value is _ABSENT:
            continue
        if type(value) is str and str in p.types:  # the common case, first
            if len(value) < p.min_length:
                return f"event/{p.name}: {value!r} is too short"
        elif not isinstance(value, p.types) or isinstance(value, p.excluded):
            return f"event/{p.name}: {value!r} is not of type {p.schema_type}"
        if p.enum is not None and value not in p.enum:
            return f"event/{p.name}: {value!r} is not one of {list(p.enum)}"
        if p.pattern is not None and type(value) is str and not p.pattern.match(value):
            return f"event/{p.name}: {value!r} is not a valid {p.schema_type} of its format"
    return None


def _data_problem(data: Any, where: str = "data") -> str | None:
    if not isinstance(data, dict):
        return None
    values = data.values()
    numbers = [v for v in values if type(v) is int or type(v) is float]
    # the common case in a few C loops: no null, nothing negative, no inf or nan (a sum
    # of finite floats is finite unless it overflows, which only sends us the slow way)
    if None in values or (numbers and (min(numbers) < 0 or not math.isfinite(sum(numbers)))):
        for key, value in data.items():
            if value is None:
                return f"{where}/{key}: null"
            numeric = type(value) is int or type(value) is float
            if numeric and (value < 0 or not math.isfinite(value)):
                return f"{where}/{key}: {value!r} is negative or not finite"
    for key, value in data.items():
        if type(value) is dict:
            found = _data_problem(value, f"{where}/{key}")
            if found is not None:
                return found
    return None


def problem(event: dict[str, Any]) -> str | None:
    """Why OpenMeter (or the meter's own rules) would refuse ``event``; None if valid."""
    return _problem(event) or _data_problem(event.get("data"))
