"""The objects an HPA ``Object`` metric may name, and the pods each one selects.

Why from the API server: a Service's or a workload's pods are those its selector matches
(``spec.selector``: a label map for a Service, a LabelSelector for a Deployment,
StatefulSet, DaemonSet or Job — the pods that controller owns and counts), and only the
API server knows the selector. Each object is read when asked for, with the exporter's
own API client (RBAC in manifests/base/rbac.yaml: get and list on exactly these kinds).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from exporter.kube.client import ApiError, KubeClient, api_path


@dataclass(frozen=True)
class ObjectKind:
    """A resource of the custom metrics API's object paths."""

    resource: str
    """As the HPA's REST mapper writes it: ``deployments.apps``."""
    kind: str
    api_version: str
    collection: str
    """The API server's collection path, with ``{namespace}``."""


KINDS: tuple[ObjectKind, ...] = (
    ObjectKind("services", "Service", "v1", "/api/v1/namespaces/{namespace}/services"),
    ObjectKind(
        "deployments.apps",
        "Deployment",
        "apps/v1",
        "/apis/apps/v1/namespaces/{namespace}/deployments",
    ),
    ObjectKind(
        "statefulsets.apps",
        "StatefulSet",
        "apps/v1",
        "/apis/apps/v1/namespaces/{namespace}/statefulsets",
    ),
    ObjectKind(
        "daemonsets.apps", "DaemonSet", "apps/v1", "/apis/apps/v1/namespaces/{namespace}/daemonsets"
    ),
    ObjectKind("jobs.batch", "Job", "batch/v1", "/apis/batch/v1/namespaces/{namespace}/jobs"),
)
BY_RESOURCE: dict[str, ObjectKind] = {
    **{k.resource: k for k in KINDS},
    **{k.resource.split(".")[0]: k for k in KINDS},  # "deployments", as people type it
}


class ObjectError(Exception):
    """The object could not be read; ``status`` is what to answer (404, 503…)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class SelectedObject:
    kind: ObjectKind
    namespace: str
    name: str
    selector: str | None
    """Kubernetes selector text of its pods; None when it selects none (a Service
    without a selector)."""

    def described(self) -> dict[str, object]:
        return {
            "kind": self.kind.kind,
            "namespace": self.namespace,
            "name": self.name,
            "apiVersion": self.kind.api_version,
        }


def _from_map(labels: Mapping[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _expression(expr: Mapping[str, Any]) -> str:
    key, op = expr.get("key"), expr.get("operator")
    values = ",".join(sorted(str(v) for v in expr.get("values") or []))
    if op == "In":
        return f"{key} in ({values})"
    if op == "NotIn":
        return f"{key} notin ({values})"
    if op == "Exists":
        return str(key)
    if op == "DoesNotExist":
        return f"!{key}"
    raise ValueError(f"unknown selector operator {op!r}")


def selector_text(selector: Any) -> str | None:
    """A LabelSelector (or a Service's label map) as selector text; None selects nothing."""
    if not isinstance(selector, dict) or not selector:
        return None
    if "matchLabels" not in selector and "matchExpressions" not in selector:
        return _from_map(selector)  # a Service's spec.selector
    parts = []
    if selector.get("matchLabels"):
        parts.append(_from_map(selector["matchLabels"]))
    parts += [_expression(e) for e in selector.get("matchExpressions") or []]
    return ",".join(parts) if parts else None


def _selected(kind: ObjectKind, namespace: str, obj: Any) -> SelectedObject:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    spec = obj.get("spec") if isinstance(obj, dict) else None
    if not isinstance(meta, dict) or not isinstance(spec, dict) or not meta.get("name"):
        raise ObjectError(502, f"the API server's {kind.kind} has no metadata or spec")
    try:
        text = selector_text(spec.get("selector"))
    except ValueError as e:
        raise ObjectError(502, f"{kind.kind} {meta['name']}: {e}") from None
    return SelectedObject(kind, namespace, str(meta["name"]), text)


async def _get(
    client: KubeClient, path: str, params: list[tuple[str, str | int | bool]], timeout: float
) -> Any:
    try:
        return await client.get_json(path, params, timeout=timeout)
    except ApiError as e:
        status = 404 if e.status == 404 else 503
        raise ObjectError(status, e.message) from None
    except (httpx.HTTPError, OSError, ValueError) as e:
        raise ObjectError(503, f"the API server cannot be reached: {e}") from None


async def read_object(
    client: KubeClient, kind: ObjectKind, namespace: str, name: str, timeout: float
) -> SelectedObject:
    path = api_path(kind.collection + "/{name}", namespace=namespace, name=name)
    return _selected(kind, namespace, await _get(client, path, [], timeout))


async def list_objects(
    client: KubeClient, kind: ObjectKind, namespace: str, selector: str | None, timeout: float
) -> list[SelectedObject]:
    """The objects of this kind in the namespace whose own labels match ``selector``."""
    params: list[tuple[str, str | int | bool]] = [("resourceVersion", "0")]
    if selector:
        params.append(("labelSelector", selector))
    listed = await _get(client, api_path(kind.collection, namespace=namespace), params, timeout)
    items = listed.get("items") if isinstance(listed, dict) else None
    return [_selected(kind, namespace, item) for item in items or []]
