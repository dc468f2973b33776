"""Small Snapshot builders for the meter tests: pods and containers with given counters.

Times are given on the wall clock; the boot clock of the builders runs ``BOOT_OFFSET``
seconds behind it (``boot_shift`` moves the wall clock alone, as NTP or ``date`` would),
so a test that mixes the two clocks up fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from extractor.contract import Container, Cpu, ExitedContainer, Memory, Pod, Snapshot, Usage

BOOT_OFFSET = 1_000_000.0
BOOT_ID = "boot-a"


@dataclass
class C:
    """A container: id, CPU counter (None = unreadable), start time, name."""

    id: str
    cpu: int | None
    started: float = 0.0
    name: str | None = None
    sandbox: bool = False
    filled: float | None = None
    """When the exit watcher saw its cgroup fill (None: it did not)."""


@dataclass
class P:
    uid: str
    cpu: int | None
    containers: list[C] = field(default_factory=list)
    name: str = "web"
    namespace: str = "default"
    working_set: int | None = None
    peak: int | None = None
    user: int | None = None
    system: int | None = None


@dataclass
class X:
    """An exited pod: its final counter, when its cgroup started and when it emptied."""

    uid: str
    cpu: int | None
    started: float = 0.0
    exited: float | None = None
    name: str = "job"
    namespace: str = "batch"
    late: bool = False


@dataclass
class E:
    """An ended container run: its pod, start, end, final counter and name."""

    id: str
    pod_uid: str
    started: float | None
    exited: float
    cpu: int | None = None
    name: str | None = None
    sandbox: bool = False


def boot(wall: float | None, shift: float = 0.0) -> float | None:
    return None if wall is None else wall - BOOT_OFFSET - shift


def usage(
    cgroup: str,
    ns: int | None,
    working_set: int | None = None,
    peak: int | None = None,
    user: int | None = None,
    system: int | None = None,
) -> Usage | None:
    if ns is None:
        return None
    memory = None
    if working_set is not None or peak is not None:
        memory = Memory(working_set_bytes=working_set, current_bytes=working_set, peak_bytes=peak)
    return Usage(cgroup=cgroup, cpu=Cpu(usage_ns=ns, user_ns=user, system_ns=system), memory=memory)


def snap(
    at: float,
    *pods: P,
    exited: tuple[X, ...] = (),
    ended: tuple[E, ...] = (),
    node: str = "node-a",
    wall_step: float = 0.0,
    boot_id: str = BOOT_ID,
) -> Snapshot:
    """A snapshot at wall time ``at``; ``wall_step`` moves only its wall clock (a clock
    set back or forward), every boot-clock time staying where ``at`` puts it."""
    s = Snapshot(
        node=node,
        taken_at=at + wall_step,
        taken_boottime=boot(at),
        boot_id=boot_id,
        cgroup_version="v1",
    )
    s.exited_pods = [
        Pod(
            uid=x.uid,
            namespace=x.namespace,
            name=x.name,
            usage=usage(f"/kubepods/pod{x.uid}", x.cpu),
            started_at=x.started + wall_step,
            started_boottime=boot(x.started),
            exited_at=None if x.exited is None else x.exited + wall_step,
            exited_boottime=boot(x.exited),
            exited_late=x.late,
        )
        for x in exited
    ]
    s.exited_containers = [
        ExitedContainer(
            id=e.id,
            pod_uid=e.pod_uid,
            name=e.name,
            sandbox=e.sandbox,
            started_at=None if e.started is None else e.started + wall_step,
            started_boottime=boot(e.started),
            exited_at=e.exited + wall_step,
            exited_boottime=e.exited - BOOT_OFFSET,
            usage=usage(f"/kubepods/pod{e.pod_uid}/{e.id}", e.cpu),
        )
        for e in ended
    ]
    for p in pods:
        s.pods.append(
            Pod(
                uid=p.uid,
                namespace=p.namespace,
                name=p.name,
                usage=usage(
                    f"/kubepods/pod{p.uid}", p.cpu, p.working_set, p.peak, p.user, p.system
                ),
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
                    started_at=c.started + wall_step,
                    started_boottime=boot(c.started),
                    filled_boottime=boot(c.filled),
                    usage=None if c.sandbox else usage(f"/kubepods/pod{p.uid}/{c.id}", c.cpu),
                )
            )
    return s
