"""Exact per-pod CPU deltas between two readings of the kernel's cumulative counters.

Pure and integer-only, so that the sum of all billed deltas equals the counter's own
change to the nanosecond. The rules (shared/reference/cgroups.md section 8):

* A counter seen for the first time is a baseline and bills nothing, unless its pod or
  container started after the previous pass: then the whole counter is the delta (it
  all came after that pass).
* A decrease is a reset (the cgroup was recreated): new baseline, counted only when the
  container started after the previous pass.
* A pod's cgroup keeps the CPU of its exited containers, so the pod's delta is what is
  billed; the part no live container accounts for (exited containers, the sandbox, and
  the skew of reading container counters a moment before the pod's) is the remainder.
* An exited pod (``Snapshot.exited_pods``: its counters read by the extractor when its
  last process exited) is a final reading. Seen before: final − mark is billed, and the
  mark is kept as *finished*, so the same tombstone in later snapshots bills nothing more
  (only a later, higher reading of it bills the difference) and the pod's disappearance
  is no loss. Never seen, and its cgroup started after the previous pass: it lived
  entirely between two passes, and its whole counter is billed. A final reading below
  the mark is older than it: nothing is billed, the mark stays as it was.
* A pod that vanished without such a reading loses its last partial window: its cgroup
  is gone, nothing is left to read. Those are counted, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from extractor.contract import Container, Pod, Snapshot, Usage


class ContainerMark(BaseModel):
    """The last reading of one container's counter."""

    model_config = ConfigDict(extra="forbid")

    cpu_ns: int
    name: str | None = None


class PodMark(BaseModel):
    """The last reading of one pod: its own counter (if it has one) and its containers'."""

    model_config = ConfigDict(extra="forbid")

    at: float = Field(description="when the reading was taken (snapshot time, or exit time)")
    cpu_ns: int | None
    containers: dict[str, ContainerMark] = Field(default_factory=dict)
    finished: bool = Field(default=False, description="an exited pod's final reading")


class Marks(BaseModel):
    """Every counter's last reading: where the next window starts."""

    model_config = ConfigDict(extra="forbid")

    taken_at: float | None = None
    pods: dict[str, PodMark] = Field(default_factory=dict)


@dataclass(frozen=True)
class PodWindow:
    """What one pod used between two readings."""

    pod_uid: str
    namespace: str | None
    name: str | None
    start: float
    end: float
    cpu_ns: int
    counter_start: int | None
    counter_end: int | None
    live: dict[str, int]
    names: dict[str, str | None]
    exited: tuple[str, ...]
    memory_working_set_bytes: int | None
    finished: bool = False
    """The pod has exited: whatever no live container accounts for, exited containers used."""

    @property
    def remainder_ns(self) -> int:
        """Pod CPU no live container's own delta accounts for."""
        return self.cpu_ns - sum(self.live.values())


@dataclass
class Outcome:
    windows: list[PodWindow] = field(default_factory=list)
    marks: Marks = field(default_factory=Marks)
    vanished_pods: int = 0
    resets: int = 0


def cpu_of(usage: Usage | None) -> int | None:
    return usage.cpu.usage_ns if usage is not None and usage.cpu is not None else None


def _delta(before: int | None, now: int, new_in_window: bool) -> tuple[int | None, bool]:
    """(delta or None for a baseline, whether the counter went backwards)."""
    if before is not None and now >= before:
        return now - before, False
    return (now if new_in_window else None), before is not None


def _started_after(started_at: float | None, since: float | None) -> bool:
    return since is not None and started_at is not None and started_at > since


def compute(previous: Marks, snapshot: Snapshot) -> Outcome:
    """The windows between ``previous`` and ``snapshot``, and the marks to start from next."""
    out = Outcome(marks=Marks(taken_at=snapshot.taken_at))
    by_id = {c.id: c for c in snapshot.containers}
    seen: set[str] = set()
    for pod in snapshot.pods:
        seen.add(pod.uid)
        members = [by_id[cid] for cid in pod.container_ids if cid in by_id]
        window, mark = _pod(previous, snapshot, pod, members, out)
        out.marks.pods[pod.uid] = mark
        if window is not None:
            out.windows.append(window)
    for pod in snapshot.exited_pods:
        if pod.uid in seen:  # live in this very snapshot: its live reading is newer
            continue
        seen.add(pod.uid)
        window, exited_mark = _exited(previous, snapshot, pod)
        if exited_mark is not None:
            out.marks.pods[pod.uid] = exited_mark
        if window is not None:
            out.windows.append(window)
    out.vanished_pods = sum(
        1 for uid, m in previous.pods.items() if uid not in seen and not m.finished
    )
    return out


def _pod(
    previous: Marks, snapshot: Snapshot, pod: Pod, members: list[Container], out: Outcome
) -> tuple[PodWindow | None, PodMark]:
    since = previous.taken_at
    old = previous.pods.get(pod.uid)
    pod_ns = cpu_of(pod.usage)
    if pod_ns is None and old is not None and old.cpu_ns is not None:
        # the pod counter was readable before: wait for it rather than lose exited CPU
        return None, old
    starts = [c.started_at for c in members if c.started_at is not None]
    pod_new = _started_after(min(starts), since) if starts else False
    mark = PodMark(at=snapshot.taken_at, cpu_ns=pod_ns)
    live: dict[str, int] = {}
    names: dict[str, str | None] = {}
    for c in members:
        before = old.containers.get(c.id) if old is not None else None
        ns = cpu_of(c.usage)
        if c.sandbox or ns is None:
            if before is not None:
                mark.containers[c.id] = before
            continue
        mark.containers[c.id] = ContainerMark(cpu_ns=ns, name=c.name)
        names[c.id] = c.name
        delta, reset = _delta(
            before.cpu_ns if before else None, ns, _started_after(c.started_at, since)
        )
        out.resets += reset
        if delta is not None:
            live[c.id] = delta
    if pod_ns is not None:
        counter_start = old.cpu_ns if old is not None else None
        cpu, reset = _delta(counter_start, pod_ns, pod_new)
        out.resets += reset
        if cpu is None:
            return None, mark
        if reset or counter_start is None:
            counter_start = 0
    elif old is not None or pod_new:
        cpu, counter_start = sum(live.values()), None
    else:
        return None, mark
    exited: tuple[str, ...] = ()
    if old is not None:
        exited = tuple(cid for cid in old.containers if cid not in mark.containers)
        names.update({cid: old.containers[cid].name for cid in exited})
    start = old.at if old is not None else max(min(starts), since or 0.0)
    memory = pod.usage.memory if pod.usage is not None else None
    window = PodWindow(
        pod_uid=pod.uid,
        namespace=pod.namespace,
        name=pod.name,
        start=start,
        end=snapshot.taken_at,
        cpu_ns=cpu,
        counter_start=counter_start,
        counter_end=pod_ns,
        live=live,
        names=names,
        exited=exited,
        memory_working_set_bytes=memory.working_set_bytes if memory is not None else None,
    )
    return window, mark


def _exited(
    previous: Marks, snapshot: Snapshot, pod: Pod
) -> tuple[PodWindow | None, PodMark | None]:
    """The window up to an exited pod's final reading, and its finished mark."""
    old = previous.pods.get(pod.uid)
    final = cpu_of(pod.usage)
    if final is None:  # no final reading after all: as if the pod was not listed
        return None, old
    exited_at = snapshot.taken_at if pod.exited_at is None else pod.exited_at
    if old is None:
        if not _started_after(pod.started_at, previous.taken_at):
            return None, PodMark(at=exited_at, cpu_ns=final, finished=True)
        assert pod.started_at is not None
        start, counter_start, cpu = pod.started_at, 0, final
    elif old.cpu_ns is None:  # billed through its containers so far: their marks are gone
        return None, PodMark(at=max(exited_at, old.at), cpu_ns=final, finished=True)
    elif final < old.cpu_ns or (old.finished and final == old.cpu_ns):
        return None, old  # nothing new; a reading older than the mark is not final either
    else:
        start, counter_start, cpu = old.at, old.cpu_ns, final - old.cpu_ns
    end = max(exited_at, start)
    containers = old.containers if old is not None else {}
    memory = pod.usage.memory if pod.usage is not None else None
    window = PodWindow(
        pod_uid=pod.uid,
        namespace=pod.namespace,
        name=pod.name,
        start=start,
        end=end,
        cpu_ns=cpu,
        counter_start=counter_start,
        counter_end=final,
        live={},
        names={cid: m.name for cid, m in containers.items()},
        exited=tuple(containers),
        memory_working_set_bytes=memory.working_set_bytes if memory is not None else None,
        finished=True,
    )
    return window, PodMark(at=end, cpu_ns=final, finished=True)
