"""The lifecycle feed's pods when there is no API server: as the extractor's snapshots
show them, with the runtime's names.

Why: a node without Kubernetes credentials (``make run``, a kubelet-less host, an API
server that is switched off) still starts and stops containers, and consumers of
``/v1/events`` still want to hear of it. Each snapshot is turned into the same pod
model the reflector serves (exporter/kube/podmeta.py): a pod per pod UID (a container
outside Kubernetes is a pod of its own), every container in it running. Comparing two
snapshots gives ADDED, MODIFIED and DELETED events, which the SSE stream
(exporter/feeds/sse.py) turns into container starts and stops exactly as it does for
the reflector's. A pod the exit watcher saw end keeps its exit time as the containers'
``finishedAt``. What a snapshot cannot tell: exit codes, and a container that started
and ended between two polls.
"""

from __future__ import annotations

from exporter.kube.podmeta import ContainerStatus, PodMeta
from exporter.kube.reflector import PodEvent, PodEventFanout
from exporter.node.views import RUNTIME_PREFIX
from extractor.contract import Container, Snapshot

QUEUE_SIZE = 1024


def _pod_key(c: Container) -> str:
    return c.pod_uid or c.id


def pods_of(snapshot: Snapshot) -> dict[str, PodMeta]:
    """The snapshot's application containers grouped into pods, named by the runtime
    (namespace and pod as /v1/containers names them without the API server)."""
    started = {p.uid: p.started_at for p in snapshot.pods}
    pods: dict[str, PodMeta] = {}
    for c in snapshot.containers:
        if c.sandbox:
            continue
        uid = _pod_key(c)
        pod = pods.get(uid)
        if pod is None:
            pod = pods[uid] = PodMeta(
                uid=uid,
                cgroup_uid=uid,
                namespace=c.namespace or c.runtime,
                name=c.pod_name or c.name or c.id[:12],
                node=snapshot.node,
                qos=c.qos,
                start_time=started.get(uid, c.started_at),
            )
        pod.containers.append(
            ContainerStatus(
                name=c.name or c.id[:12],
                container_id=c.id,
                runtime=RUNTIME_PREFIX.get(c.runtime, c.runtime),
                image=c.image,
                state="running",
                started_at=c.started_at,
            )
        )
    return pods


def _ended(pod: PodMeta, exited_at: float | None) -> PodMeta:
    containers = [
        c.model_copy(update={"state": "terminated", "finished_at": exited_at})
        for c in pod.containers
    ]
    return pod.model_copy(update={"containers": containers})


class RuntimePods(PodEventFanout):
    """A pod event source (exporter/feeds/sse.py ``PodEventSource``) fed by ``observe``
    with every snapshot; queues drop their oldest event when full, as the reflector's."""

    def __init__(self, queue_size: int = QUEUE_SIZE) -> None:
        super().__init__(queue_size)
        self._pods: dict[str, PodMeta] = {}

    def observe(self, snapshot: Snapshot) -> None:
        current = pods_of(snapshot)
        exited = {p.uid: p.exited_at for p in snapshot.exited_pods}
        events: list[PodEvent] = []
        for uid, old in self._pods.items():
            if uid in current:
                continue
            if uid in exited:
                events.append(PodEvent(type="MODIFIED", pod=_ended(old, exited[uid])))
            events.append(PodEvent(type="DELETED", pod=old))
        for uid, new in current.items():
            old_pod = self._pods.get(uid)
            if old_pod is None:
                events.append(PodEvent(type="ADDED", pod=new))
            elif old_pod.containers != new.containers:
                events.append(PodEvent(type="MODIFIED", pod=new))
        self._pods = current
        self.publish(events)

    def pods(self) -> list[PodMeta]:
        return list(self._pods.values())
