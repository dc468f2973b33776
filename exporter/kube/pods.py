"""API server Pod JSON -> PodMeta: the only place that knows the Pod wire format.

The reflector reads pods as raw JSON (camelCase, as the API server sends them) rather
than the client's generated models: it is cheaper, identical for list and watch, and a
malformed object fails here with one clear PodConversionError instead of deep inside
the client's deserializer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from exporter.kube.podmeta import ContainerKind, ContainerStatus, Owner, PodMeta
from exporter.kube.quantity import QuantityError, byte_count, millicores, parse_quantity

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
QosClass = Literal["guaranteed", "burstable", "besteffort"]
StateName = Literal["running", "terminated", "waiting"]
_QOS: dict[str, QosClass] = {
    "guaranteed": "guaranteed",
    "burstable": "burstable",
    "besteffort": "besteffort",
}
_STATES: tuple[StateName, ...] = ("running", "terminated", "waiting")
_RUNTIME_ALIASES = {"cri-o": "cri-o", "crio": "cri-o"}
_CRONJOB_JOB = re.compile(r"^(?P<cronjob>.+)-(?P<minutes>\d{8,10})$")
_CRONJOB_SKEW_SECONDS = 24 * 3600


class PodConversionError(ValueError):
    """A Pod object that does not have the shape the API server gives pods."""


def _dict(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PodConversionError(f"{where} is {type(value).__name__}, expected an object")
    return value


def _list(value: Any, where: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise PodConversionError(f"{where} is {type(value).__name__}, expected a list")
    return [_dict(item, f"{where}[{i}]") for i, item in enumerate(value)]


def _str_map(value: Any, where: str) -> dict[str, str]:
    return {str(k): str(v) for k, v in _dict(value, where).items()}


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def parse_time(value: Any) -> float | None:
    """RFC 3339 (metav1.Time / MicroTime) -> unix seconds."""
    if value in (None, ""):
        return None
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError as err:
        raise PodConversionError(f"not an RFC 3339 time: {value!r}") from err


def split_container_id(value: str | None) -> tuple[str | None, str | None]:
    """``containerd://<id>`` -> ("containerd", "<id>"); a bare ID has no runtime."""
    if not value:
        return None, None
    runtime, sep, bare = value.partition("://")
    if not sep:
        return None, value
    return _RUNTIME_ALIASES.get(runtime, runtime), bare


def resolve_owner(
    meta: dict[str, Any], labels: dict[str, str], created: float | None
) -> Owner | None:
    """The workload behind a pod, without extra API calls.

    A ReplicaSet named ``<deployment>-<pod-template-hash>`` belongs to that Deployment.
    A Job named ``<cronjob>-<scheduled minute>`` belongs to that CronJob when the minute
    is within a day before the pod's creation (a hand-made Job named ``backup-20240101``
    is left a Job).
    """
    refs = _list(meta.get("ownerReferences"), "metadata.ownerReferences")
    if not refs:
        return None
    ref = next((r for r in refs if r.get("controller") is True), refs[0])
    kind, name = str(ref.get("kind", "")), str(ref.get("name", ""))
    if not kind or not name:
        raise PodConversionError("metadata.ownerReferences entry without kind or name")
    template_hash = labels.get("pod-template-hash")
    if kind == "ReplicaSet" and template_hash and name.endswith(f"-{template_hash}"):
        return Owner(kind="Deployment", name=name.removesuffix(f"-{template_hash}"))
    if kind == "Job":
        match = _CRONJOB_JOB.match(name)
        if match and created is not None:
            scheduled = int(match["minutes"]) * 60
            if created - _CRONJOB_SKEW_SECONDS <= scheduled <= created + 60:
                return Owner(kind="CronJob", name=match["cronjob"])
    return Owner(kind=kind, name=name)


def _gpus(resources: dict[str, Any]) -> int | None:
    """Devices of every extended resource named ``<vendor>/gpu`` (``nvidia.com/gpu``,
    ``amd.com/gpu``): they are whole numbers by the API's own rule."""
    found = [v for k, v in resources.items() if k.endswith("/gpu")]
    if not found:
        return None
    return sum(int(parse_quantity(str(v))) for v in found)


def _resources(spec: dict[str, Any], where: str) -> dict[str, int | None]:
    resources = _dict(spec.get("resources"), f"{where}.resources")
    requests = _dict(resources.get("requests"), f"{where}.resources.requests")
    limits = _dict(resources.get("limits"), f"{where}.resources.limits")
    try:
        return {
            "cpu_request_millicores": _maybe(millicores, requests.get("cpu")),
            "cpu_limit_millicores": _maybe(millicores, limits.get("cpu")),
            "memory_request_bytes": _maybe(byte_count, requests.get("memory")),
            "memory_limit_bytes": _maybe(byte_count, limits.get("memory")),
            "gpu_request": _gpus(requests),
            "gpu_limit": _gpus(limits),
        }
    except (QuantityError, TypeError) as err:
        raise PodConversionError(f"{where}.resources: {err}") from err


def _overhead(spec: dict[str, Any]) -> dict[str, int | None]:
    overhead = _dict(spec.get("overhead"), "spec.overhead")
    try:
        return {
            "overhead_cpu_millicores": _maybe(millicores, overhead.get("cpu")),
            "overhead_memory_bytes": _maybe(byte_count, overhead.get("memory")),
        }
    except (QuantityError, TypeError) as err:
        raise PodConversionError(f"spec.overhead: {err}") from err


def _maybe(parse: Callable[[str], int], value: Any) -> int | None:
    return None if value is None else parse(str(value))


def _container(
    status: dict[str, Any] | None, spec: dict[str, Any], kind: ContainerKind, where: str
) -> ContainerStatus:
    status = status or {}
    state = _dict(status.get("state"), f"{where}.state")
    running = _dict(state.get("running"), f"{where}.state.running")
    terminated = _dict(state.get("terminated"), f"{where}.state.terminated")
    phase = next((s for s in _STATES if s in state), None)
    runtime, container_id = split_container_id(
        _opt_str(status.get("containerID") or terminated.get("containerID"))
    )
    exit_code = terminated.get("exitCode")
    resources = _dict(spec.get("resources"), f"{where}.resources")
    ports = _list(spec.get("ports"), f"{where}.ports")
    port = ports[0].get("containerPort") if ports else None
    return ContainerStatus(
        name=str(status.get("name") or spec.get("name") or ""),
        kind=kind,
        container_id=container_id,
        runtime=runtime,
        image=_opt_str(status.get("image") or spec.get("image")),
        image_id=_opt_str(status.get("imageID")) or None,
        restart_count=int(status.get("restartCount") or 0),
        state=phase,
        started_at=parse_time(running.get("startedAt") or terminated.get("startedAt")),
        finished_at=parse_time(terminated.get("finishedAt")),
        exit_code=None if exit_code is None else int(exit_code),
        spec_image=_opt_str(spec.get("image")),
        port=None if port is None else int(port),
        requests=_str_map(resources.get("requests"), f"{where}.resources.requests"),
        limits=_str_map(resources.get("limits"), f"{where}.resources.limits"),
        **_resources(spec, where),
    )


def _containers(pod_spec: dict[str, Any], pod_status: dict[str, Any]) -> list[ContainerStatus]:
    """Every container the spec declares, with its status when the kubelet reported one."""
    groups: tuple[tuple[str, str, ContainerKind], ...] = (
        ("initContainers", "initContainerStatuses", "init"),
        ("containers", "containerStatuses", "regular"),
        ("ephemeralContainers", "ephemeralContainerStatuses", "ephemeral"),
    )
    out: list[ContainerStatus] = []
    for spec_key, status_key, default_kind in groups:
        specs = _list(pod_spec.get(spec_key), f"spec.{spec_key}")
        statuses = {
            str(s.get("name")): s for s in _list(pod_status.get(status_key), f"status.{status_key}")
        }
        for i, spec in enumerate(specs):
            kind = default_kind
            if default_kind == "init" and spec.get("restartPolicy") == "Always":
                kind = "sidecar"
            status = statuses.pop(str(spec.get("name")), None)
            out.append(_container(status, spec, kind, f"spec.{spec_key}[{i}]"))
        for name, status in statuses.items():
            where = f"status.{status_key}[{name}]"
            out.append(_container(status, {}, default_kind, where))
    return out


def pod_meta(pod: Any) -> PodMeta:
    """Convert one Pod object (as JSON) to PodMeta; PodConversionError on bad shapes."""
    pod = _dict(pod, "pod")
    meta = _dict(pod.get("metadata"), "metadata")
    spec = _dict(pod.get("spec"), "spec")
    status = _dict(pod.get("status"), "status")
    uid, name, namespace = meta.get("uid"), meta.get("name"), meta.get("namespace")
    if not uid or not name or not namespace:
        raise PodConversionError("metadata.uid, metadata.name and metadata.namespace are required")
    labels = _str_map(meta.get("labels"), "metadata.labels")
    annotations = _str_map(meta.get("annotations"), "metadata.annotations")
    created = parse_time(meta.get("creationTimestamp"))
    qos = str(status.get("qosClass") or "").lower()
    try:
        return PodMeta(
            uid=str(uid),
            cgroup_uid=annotations.get(MIRROR_ANNOTATION) or str(uid),
            namespace=str(namespace),
            name=str(name),
            node=_opt_str(spec.get("nodeName")),
            labels=labels,
            annotations=annotations,
            owner=resolve_owner(meta, labels, created),
            qos=_QOS.get(qos),
            phase=_opt_str(status.get("phase")),
            host_ip=_opt_str(status.get("hostIP")),
            pod_ip=_opt_str(status.get("podIP")),
            start_time=parse_time(status.get("startTime")),
            resource_version=_opt_str(meta.get("resourceVersion")),
            deleting=meta.get("deletionTimestamp") is not None,
            containers=_containers(spec, status),
            scheduler=_opt_str(spec.get("schedulerName")),
            priority=None if spec.get("priority") is None else int(spec["priority"]),
            **_overhead(spec),
        )
    except (TypeError, ValueError) as err:
        if isinstance(err, PodConversionError):
            raise
        raise PodConversionError(f"pod {namespace}/{name}: {err}") from err
