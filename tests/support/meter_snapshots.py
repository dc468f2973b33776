"""Small Snapshot builders for the meter tests: pods and containers with given counters."""

from __future__ import annotations

from dataclasses import dataclass, field

from extractor.contract import Container, Cpu, Memory, Pod, Snapshot, Usage


@dataclass
class C:
    """A container: id, CPU counter (None = unreadable), start time, name."""

    id: str
    cpu: int | None
    started: float = 0.0
    name: str | None = None
    sandbox: bool = False


@dataclass
class P:
    uid: str
    cpu: int | None
    containers: list[C] = field(default_factory=list)
    name: str = "web"
    namespace: str = "default"
    working_set: int | None = None


@dataclass
class X:
    """An exited pod: its final counter, when its cgroup started and when it emptied."""

    uid: str
    cpu: int | None
    started: float = 0.0
    exited: float | None = None
    name: str = "job"
    namespace: str = "batch"


def usage(cgroup: str, ns: int | None, working_set: int | None = None) -> Usage | None:
    if ns is None:
        return None
    memory = Memory(working_set_bytes=working_set) if working_set is not None else None
    return Usage(cgroup=cgroup, cpu=Cpu(usage_ns=ns), memory=memory)


def snap(at: float, *pods: P, exited: tuple[X, ...] = (), node: str = "node-a") -> Snapshot:
    s = Snapshot(node=node, taken_at=at, cgroup_version="v1")
    s.exited_pods = [
        Pod(
            uid=x.uid,
            namespace=x.namespace,
            name=x.name,
            usage=usage(f"/kubepods/pod{x.uid}", x.cpu),
            started_at=x.started,
            exited_at=x.exited,
        )
        for x in exited
    ]
    for p in pods:
        s.pods.append(
            Pod(
                uid=p.uid,
                namespace=p.namespace,
                name=p.name,
                usage=usage(f"/kubepods/pod{p.uid}", p.cpu, p.working_set),
                container_ids=[c.id for c in p.containers],
            )
        )
        for c in p.containers:
            s.containers.append(
                Container(
                    id=c.id,
                    runtime="containerd",
                    name=c.name,
                    namespace=p.namespace,
                    pod_name=p.name,
                    pod_uid=p.uid,
                    sandbox=c.sandbox,
                    started_at=c.started,
                    usage=None if c.sandbox else usage(f"/kubepods/pod{p.uid}/{c.id}", c.cpu),
                )
            )
    return s
