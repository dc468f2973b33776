"""The DaemonSet's pods, as the API server lists them: who runs where, and on which ports.

Both the peer fan-out (exporter/cluster/peers.py) and ``collect``
(exporter/cluster/collect.py) need this list; it is read here once, as raw JSON through
the exporter's API client, and converted into what both use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from exporter.kube.client import KubeClient, api_path


@dataclass(frozen=True)
class ExporterPod:
    """One exporter pod of the DaemonSet."""

    name: str
    node: str | None
    """Where it runs, or for a pod not scheduled yet the node its DaemonSet meant it for."""
    phase: str | None
    address: str | None = None
    """The pod IP, once it has one."""
    ports: tuple[tuple[str, int], ...] = ()
    """Named container ports of the pod spec, (name, containerPort)."""
    deleting: bool = False

    @property
    def serving(self) -> bool:
        """Running, with an address, and not on its way out: worth calling."""
        return self.phase == "Running" and bool(self.address) and not self.deleting


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _named_ports(spec: dict[str, Any]) -> tuple[tuple[str, int], ...]:
    return tuple(
        (str(port["name"]), int(port["containerPort"]))
        for container in _list(spec.get("containers"))
        for port in _list(_dict(container).get("ports"))
        if isinstance(port, dict)
        and port.get("name")
        and isinstance(port.get("containerPort"), int)
    )


def _target_node(spec: dict[str, Any]) -> str | None:
    """The pod's node; while it is not bound yet, the one the DaemonSet controller pins it
    to (required node affinity on the field metadata.name), so it is reported there."""
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    affinity = _dict(_dict(spec.get("affinity")).get("nodeAffinity"))
    required = _dict(affinity.get("requiredDuringSchedulingIgnoredDuringExecution"))
    for term in _list(required.get("nodeSelectorTerms")):
        for field in _list(_dict(term).get("matchFields")):
            field = _dict(field)
            values = _list(field.get("values"))
            if (field.get("key"), field.get("operator"), len(values)) == ("metadata.name", "In", 1):
                return str(values[0])
    return None


def exporter_pods(listed: Any) -> list[ExporterPod]:
    """The pods of a PodList body, sorted by node and name; malformed items are skipped."""
    pods: list[ExporterPod] = []
    for item in _list(_dict(listed).get("items")):
        meta, spec, status = (_dict(_dict(item).get(k)) for k in ("metadata", "spec", "status"))
        if not meta.get("name"):
            continue
        pods.append(
            ExporterPod(
                name=str(meta["name"]),
                node=_target_node(spec),
                phase=str(status["phase"]) if status.get("phase") else None,
                address=str(status["podIP"]) if status.get("podIP") else None,
                ports=_named_ports(spec),
                deleting=meta.get("deletionTimestamp") is not None,
            )
        )
    return sorted(pods, key=lambda p: (p.node or "", p.name))


async def list_exporter_pods(
    client: KubeClient, namespace: str, selector: str, *, timeout: float, cached: bool = False
) -> list[ExporterPod]:
    """The DaemonSet's pods; ``cached`` reads the API server's watch cache (cheaper, may be
    a moment behind), which is what a frequent lookup wants. Raises the client's errors."""
    params: list[tuple[str, str | int | bool]] = [("labelSelector", selector)]
    if cached:
        params.append(("resourceVersion", "0"))
    path = api_path("/api/v1/namespaces/{namespace}/pods", namespace=namespace)
    return exporter_pods(await client.get_json(path, params, timeout=timeout))
