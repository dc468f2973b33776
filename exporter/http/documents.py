"""The JSON documents of ``/v1/containers`` and ``/v1/pods`` (field names in README's API).

CPU, memory, fingerprint and time fields are the snapshot contract's
(``extractor/contract/documents.py``), so ``extract --format json`` and the API agree;
what is added here is what only the exporter knows: names, labels and statuses from the
API server, and CPU rates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from exporter.kube.podmeta import PodMeta
from exporter.node.efficiency import PodUse, Use, efficiency_fields
from exporter.node.resources import Resources
from exporter.node.views import ContainerView, PodView, prefixed_id
from extractor.contract import (
    Usage,
    block_io_fields,
    cpu_fields,
    fingerprint_fields,
    memory_fields,
    network_fields,
    pressure_fields,
    rfc3339,
)


def cpu_document(usage: Usage | None, rate: float | None) -> dict[str, object]:
    return {**cpu_fields(usage.cpu if usage else None), "usageRateCores": rate}


def memory_document(usage: Usage | None) -> dict[str, object]:
    return memory_fields(usage.memory if usage else None)


def resources_document(r: Resources) -> dict[str, object]:
    """Requests and limits in cores and bytes (null: not set)."""
    return {
        "requests": {"cpuCores": r.cpu_request_cores, "memoryBytes": r.memory_request_bytes},
        "limits": {"cpuCores": r.cpu_limit_cores, "memoryBytes": r.memory_limit_bytes},
    }


def _use(usage: Usage | None, rate: float | None, resources: Resources) -> Use:
    memory = usage.memory if usage else None
    return Use(rate, memory.working_set_bytes if memory else None, resources)


def _details(usage: Usage | None, devices: Mapping[str, str]) -> dict[str, object]:
    """Pressure, block I/O and when those details were read, if before the snapshot."""
    return {
        "pressure": pressure_fields(usage.pressure if usage else None),
        "blockIo": block_io_fields(usage.block_io if usage else None, devices),
        "detailsAt": rfc3339(usage.details_at) if usage else None,
    }


def _owner(meta: PodMeta | None) -> dict[str, str] | None:
    return meta.owner.model_dump() if meta and meta.owner else None


def container_document(cv: ContainerView, devices: Mapping[str, str]) -> dict[str, object]:
    """One container as /v1/containers serves it (``devices``: the snapshot's block device
    names)."""
    c, st, meta = cv.container, cv.status, cv.meta
    return {
        "id": c.id,
        "containerId": prefixed_id(c),
        "runtime": c.runtime,
        "namespace": cv.namespace,
        "pod": cv.pod,
        "podUid": meta.uid if meta else c.pod_uid,
        "container": cv.name,
        "metadataSource": cv.source,
        "type": st.kind if st else None,
        "image": (st.image if st else None) or c.image,
        "imageId": st.image_id if st else None,
        "owner": _owner(meta),
        "qos": (meta.qos if meta else None) or c.qos,
        "labels": meta.labels if meta else {},
        "annotations": meta.annotations if meta else {},
        "restarts": st.restart_count if st else None,
        "state": st.state if st else None,
        "startedAt": rfc3339(st.started_at if st and st.started_at else c.started_at),
        "finishedAt": rfc3339(st.finished_at) if st else None,
        "exitCode": st.exit_code if st else None,
        "runtimeSeconds": c.runtime_seconds,
        "cpu": cpu_document(c.usage, cv.cpu_rate),
        "memory": memory_document(c.usage),
        **_details(c.usage, devices),
        "resources": resources_document(cv.resources),
        "efficiency": efficiency_fields(_use(c.usage, cv.cpu_rate, cv.resources)),
        "processes": len(c.pids),
        "fingerprint": fingerprint_fields(c.fingerprint),
        "errors": c.errors,
    }


def pod_document(
    pv: PodView, containers: Iterable[dict[str, object]], devices: Mapping[str, str]
) -> dict[str, object]:
    """One pod as /v1/pods serves it: totals from its own cgroup, then its containers."""
    meta, pod = pv.meta, pv.pod
    usage = pod.usage if pod else None
    return {
        "uid": pv.api_uid,
        "cgroupUid": pv.uid,
        "namespace": pv.namespace,
        "pod": pv.name,
        "metadataSource": pv.source,
        "qos": (meta.qos if meta else None) or (pod.qos if pod else None),
        "owner": _owner(meta),
        "labels": meta.labels if meta else {},
        "annotations": meta.annotations if meta else {},
        "phase": meta.phase if meta else None,
        "startTime": rfc3339(meta.start_time) if meta else None,
        "runtimeSeconds": pv.runtime_seconds,
        "cpu": cpu_document(usage, pv.cpu_rate),
        "memory": memory_document(usage),
        **_details(usage, devices),
        "network": network_fields(pod.network if pod else None),
        "networkAt": rfc3339(pod.network_at) if pod and pod.network_at else None,
        "hostNetwork": pod.host_network if pod else None,
        "resources": resources_document(pv.resources),
        "efficiency": efficiency_fields(_use(usage, pv.cpu_rate, pv.resources)),
        "containers": list(containers),
        "errors": pod.errors if pod else [],
    }


def pod_use(pv: PodView) -> PodUse:
    """What the pod uses and asks for, with its namespace and owner (``/v1/namespaces``)."""
    usage = pv.pod.usage if pv.pod else None
    owner = pv.meta.owner if pv.meta else None
    return PodUse(
        namespace=pv.namespace,
        owner_kind=owner.kind if owner else None,
        owner_name=owner.name if owner else None,
        use=_use(usage, pv.cpu_rate, pv.resources),
    )
