"""Join a Snapshot with pod metadata into namespace → pod → container views.

Names come from the API server when it is reachable and knows the pod; otherwise from
what the extractor read in the runtime's own state files, and every record says which
(``metadataSource``). Pod totals come from the pod cgroup, which keeps the CPU of
containers that already exited. Views are built once per (snapshot, API availability)
and shared by every endpoint, so a request never re-joins the node.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

from exporter.podmeta import ContainerStatus, PodMeta
from exporter.state import State
from extractor.model import Container, Pod, Snapshot, Usage

MetadataSource = Literal["api", "runtime"]

# How each runtime writes its IDs in Kubernetes (status.containerStatuses[].containerID).
RUNTIME_PREFIX = {
    "crio": "cri-o",
    "containerd": "containerd",
    "docker": "docker",
    "podman": "podman",
    "unknown": "unknown",
}
USABLE_REFLECTOR_STATES = frozenset({"synced", "relisting"})


class PodLookup(Protocol):
    """What the exporter needs of the pod reflector (exporter.kube.PodReflector)."""

    @property
    def state(self) -> str: ...

    @property
    def last_error(self) -> str | None: ...

    dropped_events: int
    conversion_errors: int
    generation: int
    """Changes whenever the cached pods change, so views know to rebuild."""

    def get_by_uid(self, uid: str) -> PodMeta | None: ...

    def get_by_container_id(self, container_id: str) -> tuple[PodMeta, ContainerStatus] | None: ...


def iso(ts: float | None) -> str | None:
    """RFC 3339 UTC, as Kubernetes writes times."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def prefixed_id(container: Container) -> str:
    return f"{RUNTIME_PREFIX.get(container.runtime, container.runtime)}://{container.id}"


@dataclass(frozen=True)
class ContainerView:
    container: Container
    namespace: str
    pod: str
    name: str
    source: MetadataSource
    meta: PodMeta | None
    status: ContainerStatus | None
    cpu_rate: float | None


@dataclass(frozen=True)
class PodView:
    uid: str
    """The UID in the pod's cgroup path (for a static pod: its config hash)."""
    namespace: str
    name: str
    source: MetadataSource
    meta: PodMeta | None
    pod: Pod | None
    containers: tuple[ContainerView, ...]
    cpu_rate: float | None
    sandboxes: tuple[Container, ...] = ()

    @property
    def api_uid(self) -> str:
        """metadata.uid when the API knows the pod: a static pod's mirror has its own UID,
        and every document names a pod by the same UID its containers carry."""
        return self.meta.uid if self.meta is not None else self.uid

    @property
    def runtime_seconds(self) -> float | None:
        """The pod lives as long as its oldest container (the sandbox, when present)."""
        members = [cv.container for cv in self.containers] + list(self.sandboxes)
        values = [c.runtime_seconds for c in members if c.runtime_seconds is not None]
        return max(values) if values else None


@dataclass(frozen=True)
class NodeView:
    snapshot: Snapshot
    version: int
    metadata_source: MetadataSource
    containers: tuple[ContainerView, ...]
    pods: tuple[PodView, ...]


def _container_view(
    c: Container, lookup: PodLookup | None, cpu_rate: float | None
) -> ContainerView:
    meta: PodMeta | None = None
    status: ContainerStatus | None = None
    if lookup is not None:
        hit = lookup.get_by_container_id(c.id)
        if hit is not None:
            meta, status = hit
        elif c.pod_uid:
            meta = lookup.get_by_uid(c.pod_uid)
    runtime_ns = c.namespace or c.runtime
    runtime_pod = c.pod_name or c.name or c.id[:12]
    return ContainerView(
        container=c,
        namespace=meta.namespace if meta else runtime_ns,
        pod=meta.name if meta else runtime_pod,
        name=status.name if status else (c.name or c.id[:12]),
        source="api" if meta is not None else "runtime",
        meta=meta,
        status=status,
        cpu_rate=cpu_rate,
    )


def _pod_names(
    uid: str,
    meta: PodMeta | None,
    pod: Pod | None,
    members: list[ContainerView],
    sandboxes: list[Container],
) -> tuple[str, str]:
    """The API's names, else the first the runtime recorded (pod cgroup, container, sandbox)."""
    if meta is not None:
        return meta.namespace, meta.name
    runtime = [(pod.namespace, pod.name)] if pod else []
    runtime += [(cv.container.namespace, cv.container.pod_name) for cv in members]
    runtime += [(c.namespace, c.pod_name) for c in sandboxes]
    namespace = next((ns for ns, _ in runtime if ns), "")
    name = next((n for _, n in runtime if n), uid)
    return namespace, name


def build_view(
    snapshot: Snapshot, version: int, state: State, lookup: PodLookup | None
) -> NodeView:
    """Join one snapshot with the reflector (None = API not usable: runtime names only)."""
    views = [
        _container_view(c, lookup, state.cpu_rate(c.id))
        for c in snapshot.containers
        if not c.sandbox
    ]
    sandboxes: dict[str, list[Container]] = {}
    for c in snapshot.containers:
        if c.sandbox and c.pod_uid:
            sandboxes.setdefault(c.pod_uid, []).append(c)
    by_pod: dict[str, list[ContainerView]] = {}
    for cv in views:
        if cv.container.pod_uid:
            by_pod.setdefault(cv.container.pod_uid, []).append(cv)
    pod_cgroups = {p.uid: p for p in snapshot.pods}
    pods: list[PodView] = []
    for uid in dict.fromkeys([*pod_cgroups, *by_pod, *sandboxes]):
        pod = pod_cgroups.get(uid)
        members = by_pod.get(uid, [])
        meta = lookup.get_by_uid(uid) if lookup is not None else None
        if meta is None:
            meta = next((cv.meta for cv in members if cv.meta is not None), None)
        namespace, name = _pod_names(uid, meta, pod, members, sandboxes.get(uid, []))
        pods.append(
            PodView(
                uid=uid,
                namespace=namespace,
                name=name,
                source="api" if meta is not None else "runtime",
                meta=meta,
                pod=pod,
                containers=tuple(members),
                cpu_rate=state.pod_cpu_rate(uid),
                sandboxes=tuple(sandboxes.get(uid, ())),
            )
        )
    return NodeView(
        snapshot=snapshot,
        version=version,
        metadata_source="api" if lookup is not None else "runtime",
        containers=tuple(views),
        pods=tuple(pods),
    )


class Views:
    """The current NodeView, rebuilt only when the snapshot, API availability or the pod
    cache changes (a label edit shows at the next request, not the next snapshot)."""

    def __init__(self, state: State, reflector: PodLookup | None) -> None:
        self.state = state
        self.reflector = reflector
        self._key: tuple[int, bool, int] | None = None
        self._view: NodeView | None = None

    def api_usable(self) -> bool:
        return self.reflector is not None and self.reflector.state in USABLE_REFLECTOR_STATES

    def current(self) -> NodeView | None:
        snapshot = self.state.snapshot
        if snapshot is None:
            return None
        usable = self.api_usable()
        generation = self.reflector.generation if usable and self.reflector is not None else 0
        key = (self.state.version, usable, generation)
        if key != self._key or self._view is None:
            self._view = build_view(
                snapshot, self.state.version, self.state, self.reflector if usable else None
            )
            self._key = key
        return self._view


def _seconds(ns: int | None) -> float | None:
    return ns / 1e9 if ns is not None else None


def cpu_document(usage: Usage | None, rate: float | None) -> dict[str, object]:
    cpu = usage.cpu if usage else None
    return {
        "totalSeconds": _seconds(cpu.usage_ns) if cpu else None,
        "userSeconds": _seconds(cpu.user_ns) if cpu else None,
        "systemSeconds": _seconds(cpu.system_ns) if cpu else None,
        "throttledSeconds": _seconds(cpu.throttled_ns) if cpu else None,
        "periods": cpu.periods if cpu else None,
        "throttledPeriods": cpu.throttled_periods if cpu else None,
        "usageRateCores": rate,
    }


def memory_document(usage: Usage | None) -> dict[str, object]:
    mem = usage.memory if usage else None
    return {
        "currentBytes": mem.current_bytes if mem else None,
        "peakBytes": mem.peak_bytes if mem else None,
        "workingSetBytes": mem.working_set_bytes if mem else None,
        "limitBytes": mem.limit_bytes if mem else None,
    }


def fingerprint_document(c: Container) -> dict[str, object] | None:
    if c.fingerprint is None:
        return None
    doc = c.fingerprint.model_dump(exclude_none=True)
    if not doc.get("runtimes"):
        doc.pop("runtimes", None)
    return doc


def _owner(meta: PodMeta | None) -> dict[str, str] | None:
    return meta.owner.model_dump() if meta and meta.owner else None


def container_document(cv: ContainerView) -> dict[str, object]:
    """One container as /v1/containers serves it (field names documented in README)."""
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
        "startedAt": iso(st.started_at if st and st.started_at else c.started_at),
        "finishedAt": iso(st.finished_at) if st else None,
        "exitCode": st.exit_code if st else None,
        "runtimeSeconds": c.runtime_seconds,
        "cpu": cpu_document(c.usage, cv.cpu_rate),
        "memory": memory_document(c.usage),
        "processes": len(c.pids),
        "fingerprint": fingerprint_document(c),
        "errors": c.errors,
    }


def pod_document(pv: PodView, containers: Iterable[dict[str, object]]) -> dict[str, object]:
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
        "startTime": iso(meta.start_time) if meta else None,
        "runtimeSeconds": pv.runtime_seconds,
        "cpu": cpu_document(usage, pv.cpu_rate),
        "memory": memory_document(usage),
        "containers": list(containers),
        "errors": pod.errors if pod else [],
    }
