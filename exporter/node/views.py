"""Join a Snapshot with pod metadata into namespace → pod → container views.

Names come from the API server when it is reachable and knows the pod; otherwise from
what the extractor read in the runtime's own state files, and every record says which
(``metadataSource``). Pod totals come from the pod cgroup, which keeps the CPU of
containers that already exited. Views are built once per (snapshot, API availability)
and shared by every endpoint, so a request never re-joins the node; a new snapshot
re-joins only the containers whose records changed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, Protocol

from exporter.kube.podmeta import ContainerStatus, PodMeta
from exporter.node.resources import Resources, container_resources, pod_resources
from exporter.node.state import Reading, State
from extractor.contract import DERIVED, Container, Pod, Snapshot, same_record

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

    @property
    def resources(self) -> Resources:
        """Its spec's requests and limits (none known without the API's pod)."""
        return container_resources(self.status)


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
    def resources(self) -> Resources:
        """The pod's effective requests and limits (``exporter.node.resources``)."""
        return pod_resources(self.meta)

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
    reading: Reading
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
    reading: Reading, lookup: PodLookup | None, previous: NodeView | None = None
) -> NodeView:
    """Join one reading with the reflector (None = API not usable: runtime names only).

    ``previous`` is a view joined with the same pod metadata: a container whose record
    says what it said there keeps that join, with only its record and rate replaced."""
    snapshot = reading.snapshot
    joined = {cv.container.id: cv for cv in previous.containers} if previous else {}
    derived = DERIVED["containers"]
    views: list[ContainerView] = []
    for c in snapshot.containers:
        if c.sandbox:
            continue
        rate = reading.cpu_rate(c.id)
        old = joined.get(c.id)
        if old is not None and same_record(old.container, c, derived):
            views.append(replace(old, container=c, cpu_rate=rate))
        else:
            views.append(_container_view(c, lookup, rate))
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
                cpu_rate=reading.pod_cpu_rate(uid),
                sandboxes=tuple(sandboxes.get(uid, ())),
            )
        )
    return NodeView(
        reading=reading,
        snapshot=snapshot,
        version=reading.version,
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
        reading = self.state.reading
        if reading is None:
            return None
        usable = self.api_usable()
        generation = self.reflector.generation if usable and self.reflector is not None else 0
        key = (reading.version, usable, generation)
        if key != self._key or self._view is None:
            same_metadata = self._key is not None and self._key[1:] == key[1:]
            previous = self._view if same_metadata else None
            self._view = build_view(reading, self.reflector if usable else None, previous)
            self._key = key
        return self._view
