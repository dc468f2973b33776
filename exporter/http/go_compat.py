"""What Go's net/http and encoding/json do with a request, for an endpoint that must answer
exactly as a Go server does (``/gather_runtime_info``, exporter/http/insights.py).

Why not Python's own parsers: they disagree with Go at the edges a client can reach —
``json`` recurses (a deeply nested body would raise instead of being read or refused
as Go refuses it, past 10,000 levels), accepts ``NaN``, and compares nothing
case-insensitively; yarl splits a query on ``;`` differently. Each function below
follows the Go behaviour named in its docstring (docs/insights-runtime-extractor.md).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from json.decoder import scanstring  # type: ignore[attr-defined]
from urllib.parse import unquote_to_bytes

from aiohttp import web

MAX_DEPTH = 10000
"""encoding/json's maxNestingDepth: deeper values are a syntax error."""
_WHITESPACE = " \t\r\n"
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_LITERALS = ("true", "false", "null")


class GoSyntaxError(ValueError):
    """The text is not one JSON value as encoding/json reads it."""


@dataclass(frozen=True)
class Member:
    """One direct child of an object or array: its key (None in an array) and its span."""

    key: str | None
    start: int
    end: int


def skip_space(text: str, at: int) -> int:
    while at < len(text) and text[at] in _WHITESPACE:
        at += 1
    return at


def _scalar_end(text: str, at: int) -> int:
    char = text[at]
    if char == '"':
        try:
            return int(scanstring(text, at + 1, True)[1])
        except ValueError as exc:
            raise GoSyntaxError(str(exc)) from None
    for literal in _LITERALS:
        if text.startswith(literal, at):
            return at + len(literal)
    number = _NUMBER.match(text, at)
    if number is None:
        raise GoSyntaxError(f"invalid character {char!r} looking for beginning of value")
    return number.end()


def _key(text: str, at: int) -> tuple[str, int]:
    """An object key and the position after its colon."""
    at = skip_space(text, at)
    if at >= len(text) or text[at] != '"':
        raise GoSyntaxError("looking for beginning of object key string")
    try:
        key, at = scanstring(text, at + 1, True)
    except ValueError as exc:
        raise GoSyntaxError(str(exc)) from None
    at = skip_space(text, at)
    if at >= len(text) or text[at] != ":":
        raise GoSyntaxError("after object key")
    return str(key), at + 1


def scan(text: str, at: int) -> tuple[int, list[Member]]:
    """The end of the JSON value starting at ``at`` (after whitespace) and its direct
    children, without recursion: nesting is bounded by MAX_DEPTH as in encoding/json,
    not by Python's stack. Raises GoSyntaxError where Go's scanner reports an error."""
    stack: list[str] = []
    children: list[Member] = []
    key: str | None = None  # the key of the direct child being read
    start = 0
    while True:
        at = skip_space(text, at)
        if at >= len(text):
            raise GoSyntaxError("unexpected end of JSON input")
        if len(stack) == 1:
            start = at
        char = text[at]
        if char in "{[":
            stack.append(char)
            if len(stack) > MAX_DEPTH:
                raise GoSyntaxError("exceeded max depth")
            at = skip_space(text, at + 1)
            closing = "}" if char == "{" else "]"
            if at < len(text) and text[at] == closing:
                stack.pop()
                at += 1
            elif char == "{":
                name, at = _key(text, at)
                key = name if len(stack) == 1 else key
                continue
            else:
                continue
        else:
            at = _scalar_end(text, at)
        while True:  # after a value: record it, then a comma or a closing bracket
            if not stack:
                return at, children
            if len(stack) == 1:
                children.append(Member(key if stack[0] == "{" else None, start, at))
            at = skip_space(text, at)
            char = text[at] if at < len(text) else ""
            if char == ",":
                if stack[-1] == "{":
                    name, at = _key(text, at + 1)
                    key = name if len(stack) == 1 else key
                else:
                    at += 1
                break
            if char == ("}" if stack[-1] == "{" else "]"):
                stack.pop()
                at += 1
                continue
            raise GoSyntaxError("after object key:value pair or array element")


_FOLDS = {"k": "kK\u212a", "s": "sS\u017f"}
"""The two non-ASCII runes Unicode simple case folding maps onto ASCII letters."""


def fold_equal(name: str, field: str) -> bool:
    """encoding/json's match of an object key to a struct field: bytes.EqualFold, i.e.
    equal under Unicode simple case folding (``containerIDS`` matches ``containerIds``)."""
    if len(name) != len(field):
        return False
    return all(
        a in _FOLDS.get(b.lower(), b.lower() + b.upper()) for a, b in zip(name, field, strict=True)
    )


def decode_string(text: str, start: int) -> str:
    """The JSON string at ``start``; lone surrogates become U+FFFD as Go's decoder does."""
    return no_surrogates(str(scanstring(text, start + 1, True)[0]))


def no_surrogates(value: str) -> str:
    """A decoded string as Go holds it: a lone surrogate escape is U+FFFD."""
    return _SURROGATES.sub("\ufffd", value)


_SURROGATES = re.compile("[\ud800-\udfff]")


def marshal(value: object) -> bytes:
    """json.Marshal's bytes for maps, strings and lists: compact, UTF-8, ``<``, ``>``,
    ``&``, U+2028 and U+2029 escaped, invalid text as U+FFFD (map keys must already be in
    Go's sorted order)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for char, escaped in _ESCAPES:
        text = text.replace(char, escaped)
    return _SURROGATES.sub("\ufffd", text).encode()


_ESCAPES = (
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("&", "\\u0026"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
)


def http_error(text: str, status: int) -> web.Response:
    """What Go's http.Error writes: text/plain, nosniff, the message and a newline."""
    return web.Response(
        status=status,
        body=(text + "\n").encode(),
        headers={
            "Content-Type": "text/plain; charset=utf-8",
            "X-Content-Type-Options": "nosniff",
        },
    )


def query_get(raw_query: str, name: str) -> str:
    """``r.URL.Query().Get(name)``: the first value, "" when absent. Go's ParseQuery splits
    on ``&`` only, skips a pair holding ``;`` or a bad escape, and decodes ``+`` as space."""
    for pair in raw_query.split("&"):
        if not pair or ";" in pair:
            continue
        key, _, value = pair.partition("=")
        try:
            if _unescape(key) == name:
                return _unescape(value)
        except ValueError:
            continue
    return ""


_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _unescape(part: str) -> str:
    if _BAD_ESCAPE.search(part):
        raise ValueError(f"invalid URL escape in {part!r}")
    return unquote_to_bytes(part.replace("+", " ")).decode("utf-8", "replace")
