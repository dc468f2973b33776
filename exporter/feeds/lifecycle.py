"""Container start/stop events derived from successive versions of a pod.

The API server only says "this pod changed"; consumers that key usage by container ID
(telemd-kubernetes-adapter's users) want "container X started" and
"container X stopped". Diffing the container statuses of two versions of a pod gives
exactly that, including containers that lived and died between two updates and pods
deleted with containers still running.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from exporter.kube.podmeta import ContainerStatus, PodMeta
from extractor.contract import rfc3339

_QOS_NAMES = {"guaranteed": "Guaranteed", "burstable": "Burstable", "besteffort": "BestEffort"}


class ContainerEvent(BaseModel):
    """One container start or stop, with the pod context a consumer needs to attribute it."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    type: Literal["start", "stop"]
    pod_uid: str = Field(alias="podUid")
    container_id: str = Field(alias="containerID", description="<runtime>://<id>")
    container_name: str = Field(alias="containerName")
    container_kind: str = Field(alias="containerKind")
    image: str | None = None
    pod_name: str = Field(alias="podName")
    namespace: str
    node: str | None = None
    host_ip: str | None = Field(default=None, alias="hostIP")
    pod_ip: str | None = Field(default=None, alias="podIP")
    qos_class: str | None = Field(default=None, alias="qosClass")
    start_time: str | None = Field(
        default=None, alias="startTime", description="the pod's status.startTime, as telemd"
    )
    started_at: str | None = Field(
        default=None, alias="startedAt", description="when this container (last) started"
    )
    finished_at: str | None = Field(default=None, alias="finishedAt")
    exit_code: int | None = Field(default=None, alias="exitCode")

    @property
    def event_id(self) -> str:
        """Deterministic, so a consumer can drop a duplicate after a reconnect."""
        return f"{self.container_id}/{self.type}"


def _event(
    kind: Literal["start", "stop"], pod: PodMeta, container: ContainerStatus, ended: bool
) -> ContainerEvent:
    """ended: the status is the container's final one (finishedAt/exitCode are known)."""
    return ContainerEvent(
        type=kind,
        pod_uid=pod.uid,
        container_id=f"{container.runtime or 'unknown'}://{container.container_id}",
        container_name=container.name,
        container_kind=container.kind,
        image=container.image,
        pod_name=pod.name,
        namespace=pod.namespace,
        node=pod.node,
        host_ip=pod.host_ip,
        pod_ip=pod.pod_ip,
        qos_class=_QOS_NAMES.get(pod.qos or ""),
        start_time=rfc3339(pod.start_time),
        started_at=rfc3339(container.started_at),
        finished_at=rfc3339(container.finished_at) if kind == "stop" and ended else None,
        exit_code=container.exit_code if kind == "stop" and ended else None,
    )


def _by_id(pod: PodMeta | None) -> dict[str, ContainerStatus]:
    if pod is None:
        return {}
    return {c.container_id: c for c in pod.containers if c.container_id}


def diff(old: PodMeta | None, new: PodMeta | None) -> list[ContainerEvent]:
    """Events between two versions of one pod (None = absent: not yet seen / deleted)."""
    before, after = _by_id(old), _by_id(new)
    events: list[ContainerEvent] = []
    for cid, was in before.items():
        now = after.get(cid)
        if old is None or was.state != "running" or (now is not None and now.state == "running"):
            continue
        final = now if now is not None and now.state == "terminated" else was
        pod = new if now is not None and new is not None else old
        events.append(_event("stop", pod, final, ended=final.state == "terminated"))
    if new is None:
        return events
    for cid, now in after.items():
        if cid in before or now.state not in ("running", "terminated"):
            continue
        events.append(_event("start", new, now, ended=False))
        if now.state == "terminated":
            events.append(_event("stop", new, now, ended=True))
    return events


def follow(seen: dict[str, PodMeta], changed: PodMeta, deleted: bool) -> list[ContainerEvent]:
    """The events of one change to a pod, with ``seen`` (pods by UID) brought up to date."""
    old = seen.get(changed.uid)
    if deleted:
        seen.pop(changed.uid, None)
        return diff(old, None)
    seen[changed.uid] = changed
    return diff(old, changed)


def running(pod: PodMeta) -> list[ContainerEvent]:
    """Start events for the containers running now (a new subscriber's starting point)."""
    return [
        _event("start", pod, c, ended=False)
        for c in pod.containers
        if c.container_id and c.state == "running"
    ]
