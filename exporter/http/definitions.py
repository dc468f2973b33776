"""Metrics users define: a YAML (or JSON) file of definitions, checked once at start.

Why data and not code: flux-metrics-api imports Python functions from a file, which in
a node agent would run arbitrary code next to the cluster's credentials. A definition
names a field, an aggregation and filters (exporter/http/metric_defs.py), which is all
a metric needs, and can be checked completely before the exporter serves anything:
a bad one stops the start with a message naming it.

    metrics:
      - name: java_working_set_bytes
        description: working set of the Java containers
        field: container.memory.workingSetBytes
        aggregation: sum                # sum | avg | max | count
        labelSelector: "tier=backend"   # pods whose labels match (Kubernetes syntax)
        fingerprintKind: [Java]         # containers of these fingerprint kinds
        containers: [main]              # containers of these names
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from exporter.http.metric_defs import BUILTIN, Aggregation, MetricDef, field_names
from exporter.kube.selectors import SelectorError, parse_selector

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class DefinitionError(ValueError):
    """The definitions file cannot be used; the message names the bad definition."""


class _Definition(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str
    description: str = ""
    field: str | None = None
    aggregation: Aggregation
    label_selector: str | None = Field(default=None, alias="labelSelector")
    fingerprint_kind: str | list[str] = Field(default_factory=list, alias="fingerprintKind")
    containers: list[str] = Field(default_factory=list)


def _one(index: int, raw: Any, taken: set[str]) -> MetricDef:
    label = f"metric #{index + 1}"
    if isinstance(raw, dict) and isinstance(raw.get("name"), str):
        label += f" ({raw['name']})"
    try:
        d = _Definition.model_validate(raw)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'definition'}: {err['msg']}"
            for err in e.errors()
        )
        raise DefinitionError(f"{label}: {problems}") from None
    if not _NAME.match(d.name):
        raise DefinitionError(
            f"{label}: name must be lower case letters, digits and _ (at most 63, "
            "starting with a letter)"
        )
    if d.name in taken:
        raise DefinitionError(f"{label}: the name {d.name} is already taken")
    if d.field is None and d.aggregation != "count":
        raise DefinitionError(f"{label}: field is required unless aggregation is count")
    if d.field is not None and d.field not in field_names():
        raise DefinitionError(
            f"{label}: field {d.field!r} is not one of {', '.join(field_names())}"
        )
    try:
        pods = parse_selector(d.label_selector)
    except SelectorError as e:
        raise DefinitionError(f"{label}: labelSelector: {e}") from None
    kinds = [d.fingerprint_kind] if isinstance(d.fingerprint_kind, str) else d.fingerprint_kind
    return MetricDef(
        d.name,
        d.field,
        d.aggregation,
        d.description,
        pods=pods,
        kinds=frozenset(kinds),
        containers=frozenset(d.containers),
    )


def parse_definitions(text: str) -> list[MetricDef]:
    """The definitions in ``text`` (YAML or JSON), checked; DefinitionError otherwise."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise DefinitionError(f"not valid YAML: {e}") from None
    if doc is None:
        return []
    if not isinstance(doc, dict) or set(doc) - {"metrics"}:
        raise DefinitionError('expected a mapping with one key, "metrics" (a list)')
    items = doc.get("metrics") or []
    if not isinstance(items, list):
        raise DefinitionError('"metrics" must be a list of definitions')
    taken = {m.name for m in BUILTIN}
    out: list[MetricDef] = []
    for index, raw in enumerate(items):
        metric = _one(index, raw, taken)
        taken.add(metric.name)
        out.append(metric)
    return out


def load_definitions(path: str) -> list[MetricDef]:
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise DefinitionError(f"cannot read it: {e}") from None
    return parse_definitions(text)
