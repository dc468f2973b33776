"""The exporter's settings as a node would start it from a rendered pod spec."""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices

from exporter.settings import Settings

DOWNWARD_API = {"spec.nodeName": "node-a", "metadata.namespace": "runtime-insights"}
"""What the kubelet fills in for the downward-API fields the manifests use."""


def exporter_settings(exporter: dict[str, Any], namespace: str | None = None) -> Settings:
    """The exporter's settings as a node would start it: literal values, and the
    downward-API fields as the kubelet resolves them (optional ConfigMap/Secret keys unset),
    for a pod in ``namespace`` (default: the overlays' own)."""
    downward = {**DOWNWARD_API, **({"metadata.namespace": namespace} if namespace else {})}
    prefix = "RUNTIME_INSIGHTS_"
    aliased = {  # settings with several names are given by the name the pod spec uses
        str(choice)
        for field in Settings.model_fields.values()
        if isinstance(field.validation_alias, AliasChoices)
        for choice in field.validation_alias.choices
    }
    values: dict[str, str] = {}
    for e in exporter["env"]:
        field_ref = e.get("valueFrom", {}).get("fieldRef")
        key = e["name"] if e["name"] in aliased else e["name"].removeprefix(prefix).lower()
        if "value" in e:
            values[key] = e["value"]
        elif field_ref is not None:
            values[key] = downward[field_ref["fieldPath"]]
    return Settings.model_validate(values)
