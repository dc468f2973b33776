"""JSON written byte for byte as Go's ``encoding/json`` writes it.

Why: telemd-kubernetes-adapter's consumers read lines that Go's ``json.Marshal`` made;
the telemd feed (exporter/feeds/telemd.py, docs/telemd.md) must produce the same bytes,
so a consumer that compares, hashes or greps them sees no difference. What Go does and Python's
``json`` does not: struct fields in declaration order but map keys sorted, no spaces,
``<``, ``>``, ``&``, U+2028 and U+2029 escaped as ``\\u003c`` …, and control characters
other than ``\\n``, ``\\r``, ``\\t`` as ``\\u00XX`` (the adapter is built with Go 1.15,
before Go 1.22 began writing ``\\b`` and ``\\f``).

A ``Struct`` keeps its fields in the order given; a ``dict`` is a Go map and is sorted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

_SHORT = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ESCAPED = re.compile('["\\\\\x00-\x1f<>&\u2028\u2029]')


@dataclass(frozen=True)
class Struct:
    """A Go struct value: fields written in this order."""

    fields: Sequence[tuple[str, GoValue]]


GoValue = str | int | bool | None | Struct | Mapping[str, "GoValue"] | Sequence["GoValue"]


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    return _SHORT.get(ch) or f"\\u{ord(ch):04x}"


def _string(text: str) -> str:
    return '"' + _ESCAPED.sub(_escape, text) + '"'


def marshal(value: GoValue) -> str:
    """``json.Marshal(value)`` as Go writes it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, Struct):
        return "{" + ",".join(f"{_string(k)}:{marshal(v)}" for k, v in value.fields) + "}"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{_string(k)}:{marshal(value[k])}" for k in sorted(value)) + "}"
    return "[" + ",".join(marshal(v) for v in value) + "]"
