"""Kubernetes label selectors (``labelSelector=``) parsed and matched.

The official Python client passes selectors through as strings and has no parser, and
the custom metrics API must also echo a selector back as a ``LabelSelector`` object, so
this follows the grammar of k8s.io/apimachinery ``labels.Parse``: comma-separated
requirements ``k``, ``!k``, ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``,
``k>N``, ``k<N``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Operator = Literal["=", "!=", "in", "notin", "exists", "!", "gt", "lt"]

_NAME = r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_PREFIX = r"[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?"
_KEY = rf"(?:{_PREFIX}/)?{_NAME}"
_VALUE = rf"(?:{_NAME})?"

_KEY_RE = re.compile(rf"^{_KEY}$")
_VALUE_RE = re.compile(rf"^{_VALUE}$")
_SET_RE = re.compile(r"^\s*(\S+?)\s+(in|notin)\s*\((.*)\)\s*$")
_EQ_RE = re.compile(r"^\s*([^\s=!<>]+)\s*(==|=|!=)\s*(\S*)\s*$")
_CMP_RE = re.compile(r"^\s*([^\s=!<>]+)\s*([<>])\s*(\S+)\s*$")
_NOT_RE = re.compile(r"^\s*!\s*(\S+)\s*$")
_EXISTS_RE = re.compile(r"^\s*(\S+)\s*$")


class SelectorError(ValueError):
    """A selector that does not follow the Kubernetes grammar."""


@dataclass(frozen=True)
class Requirement:
    key: str
    op: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op == "=":
            return value == self.values[0]
        if self.op == "!=":
            return value != self.values[0]
        if self.op == "in":
            return value in self.values
        if self.op == "notin":
            return value not in self.values
        if value is None or not value.lstrip("-").isdigit():
            return False
        bound = int(self.values[0])
        return int(value) > bound if self.op == "gt" else int(value) < bound


@dataclass(frozen=True)
class Selector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def as_label_selector(self) -> dict[str, object]:
        """The metav1.LabelSelector form the custom metrics API echoes in ``metric.selector``.

        gt/lt have no LabelSelector operator; they are echoed as Gt/Lt like the
        apimachinery conversion does for node selectors.
        """
        match_labels: dict[str, str] = {}
        expressions: list[dict[str, object]] = []
        names = {"in": "In", "notin": "NotIn", "exists": "Exists", "!": "DoesNotExist"}
        for r in self.requirements:
            if r.op == "=":
                match_labels[r.key] = r.values[0]
            elif r.op == "!=":
                expressions.append({"key": r.key, "operator": "NotIn", "values": list(r.values)})
            elif r.op in names:
                item: dict[str, object] = {"key": r.key, "operator": names[r.op]}
                if r.values:
                    item["values"] = list(r.values)
                expressions.append(item)
            else:
                expressions.append(
                    {
                        "key": r.key,
                        "operator": "Gt" if r.op == "gt" else "Lt",
                        "values": [*r.values],
                    }
                )
        out: dict[str, object] = {}
        if match_labels:
            out["matchLabels"] = match_labels
        if expressions:
            out["matchExpressions"] = expressions
        return out


def _split(text: str) -> list[str]:
    """Split on commas outside parentheses (``in (a,b)`` keeps its list)."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError("unbalanced ')'")
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if depth:
        raise SelectorError("unbalanced '('")
    parts.append("".join(current))
    return parts


def _key(key: str) -> str:
    if not _KEY_RE.match(key):
        raise SelectorError(f"invalid label key {key!r}")
    return key


def _value(value: str) -> str:
    if not _VALUE_RE.match(value):
        raise SelectorError(f"invalid label value {value!r}")
    return value


def _requirement(text: str) -> Requirement:
    if m := _SET_RE.match(text):
        values = [v.strip() for v in m.group(3).split(",")]
        if values == [""]:
            raise SelectorError(f"empty value set in {text.strip()!r}")
        op: Operator = "in" if m.group(2) == "in" else "notin"
        return Requirement(_key(m.group(1)), op, tuple(sorted({_value(v) for v in values})))
    if m := _EQ_RE.match(text):
        op = "!=" if m.group(2) == "!=" else "="
        return Requirement(_key(m.group(1)), op, (_value(m.group(3)),))
    if m := _CMP_RE.match(text):
        if not m.group(3).lstrip("-").isdigit():
            raise SelectorError(f"{text.strip()!r}: {m.group(2)} needs an integer")
        return Requirement(_key(m.group(1)), "gt" if m.group(2) == ">" else "lt", (m.group(3),))
    if m := _NOT_RE.match(text):
        return Requirement(_key(m.group(1)), "!")
    if m := _EXISTS_RE.match(text):
        return Requirement(_key(m.group(1)), "exists")
    raise SelectorError(f"cannot parse requirement {text.strip()!r}")


def parse_selector(text: str | None) -> Selector:
    """Parse a selector; empty or absent selects everything."""
    if text is None or not text.strip():
        return Selector()
    return Selector(tuple(_requirement(part) for part in _split(text)))
