"""What each pod used between two readings of the kernel's cumulative counters.

Pure and integer-only, so that the sum of all billed deltas equals the counter's own
change to the nanosecond, and the sum of all billed intervals a run's length. Every
interval runs from the pod's *cursor* (the boot-clock time of the poll that last
accounted it, kept in its ``PodMark``) to this snapshot, so consecutive readings tile a
pod's life with no gap and no overlap. The rules (docs/cgroups.md, "Counters that reset
or vanish"; README, "Usage events"):

* A pod seen for the first time is billed from zero when it started after the previous
  poll, or indeed after the spool's first poll (the baseline): since then the meter has
  kept a mark of every pod it saw, so nothing of one it never saw was billed. Starts are
  compared on the kernel's boot clock allowing its 10 ms tick; after a reboot everything
  is new. A pod that started before the baseline bills nothing for its past (it was
  running before the agent was installed, or before its spool was lost).
* A decrease of a counter is a reset (the cgroup was recreated): a new series, counted
  from zero when it started after the previous poll.
* A pod's cgroup keeps the CPU of its exited containers, so the pod's delta is what is
  billed. It is split over containers by their own deltas (live ones, and ended runs
  with their final reading, ``Snapshot.exited_containers``); the rest (the sandbox, and
  the skew of reading container counters a moment apart from the pod's) is the
  remainder. The split never goes negative: if the containers' deltas add up to more
  than the pod's, they are scaled down to it.
* An exited pod (``Snapshot.exited_pods``) is a final reading: final − mark once, then
  a *finished* mark, so the same tombstone in later snapshots bills nothing.
* A pod in neither list keeps its mark until it has been missing for ``MARK_RETENTION``
  of snapshots (longer than the extractor keeps a tombstone): it may be between two
  containers, or its tombstone may come with the next snapshot. Only then is it
  forgotten (remembered as *retired* for an hour, so it is never new again), and
  counted as lost if it never had a final reading.
* Runtime is the overlap of each container run (cgroup filled → emptied, or the first
  process's start for a live one) with the interval; the pod's duration the overlap of
  its life (its first start → its exit) with it; restarts are runs that started in the
  interval under a name the pod already ran.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from exporter.meter.clock import TICK_NS, ns, overlap_ns
from extractor.contract import Container, ExitedContainer, Pod, Snapshot, Usage

MARK_RETENTION_NS = 900 * 10**9
RETIRED_NS = 3600 * 10**9
MAX_RETIRED = 16384
EXITED = "<exited>"
"""Where the CPU of several containers that ended unseen goes."""
"""A missing pod's mark is kept this long: the extractor lists a tombstone for 600 s."""


class ContainerMark(BaseModel):
    """The last reading of one container's counter, and the earliest start seen of it."""

    model_config = ConfigDict(extra="forbid")

    cpu_ns: int
    name: str | None = None
    started_ns: int | None = None


class PodMark(BaseModel):
    """Where a pod's next interval starts: its cursor and its counters' last readings."""

    model_config = ConfigDict(extra="forbid")

    at: float = Field(description="wall time of the poll that last accounted the pod")
    at_ns: int = Field(description="the same poll on the boot clock: the cursor")
    seen_ns: int = Field(description="boot clock of the last snapshot that listed it")
    cpu_ns: int | None
    user_ns: int | None = None
    system_ns: int | None = None
    series: int = 0
    started_ns: int | None = None
    containers: dict[str, ContainerMark] = Field(default_factory=dict)
    names: list[str] = Field(default_factory=list, description="container names that ran")
    working_set: int | None = None
    peak: int | None = None
    finished: bool = Field(default=False, description="an exited pod's final reading")


class Marks(BaseModel):
    """Every pod's last reading, and the poll they were taken at."""

    model_config = ConfigDict(extra="forbid")

    taken_at: float | None = None
    taken_ns: int | None = None
    boot_id: str | None = None
    since_ns: int | None = Field(
        default=None,
        description="the baseline: this spool's first poll of this boot (0 after a reboot "
        "it metered through). Every pod that started after it is known from its start",
    )
    pods: dict[str, PodMark] = Field(default_factory=dict)
    retired: dict[str, int] = Field(
        default_factory=dict, description="pods whose mark expired, for RETIRED_NS: never new again"
    )


@dataclass(frozen=True)
class ContainerUse:
    """One container's share of a pod's interval."""

    name: str | None
    cpu_ns: int = 0
    runtime_ns: int = 0
    restarts: int = 0


@dataclass(frozen=True)
class PodReading:
    """What one pod used in one interval (a poll, or up to its exit)."""

    pod_uid: str
    namespace: str | None
    name: str | None
    start_at: float
    start_ns: int
    end_at: float
    end_ns: int
    cpu_ns: int
    user_ns: int
    system_ns: int
    counter_start: int | None
    counter_end: int | None
    series: int
    containers: dict[str, ContainerUse]
    remainder_ns: int
    duration_ns: int
    runtime_ns: int
    restarts: int
    working_set: int | None
    working_set_byte_ns: int
    memory_current: int | None
    memory_peak: int | None
    finished: bool = False

    @property
    def empty(self) -> bool:
        return not (self.cpu_ns or self.duration_ns or self.runtime_ns or self.restarts)


@dataclass
class Outcome:
    readings: list[PodReading] = field(default_factory=list)
    marks: Marks = field(default_factory=Marks)
    lost_pods: int = 0
    resets: int = 0


def cpu_of(usage: Usage | None) -> int | None:
    return usage.cpu.usage_ns if usage is not None and usage.cpu is not None else None


class _Clock:
    """The snapshot's times as boot-clock nanoseconds (the wall clock for a snapshot of an
    extractor too old to send the boot clock), and back to wall time for people."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.boot = snapshot.taken_boottime is not None
        self.now_ns = ns(snapshot.taken_boottime if self.boot else snapshot.taken_at)  # type: ignore[arg-type]
        self.now_at = snapshot.taken_at

    def of(self, boot: float | None, wall: float | None) -> int | None:
        value = boot if self.boot else wall
        return None if value is None else ns(value)

    def wall(self, at_ns: int) -> float:
        return self.now_at - (self.now_ns - at_ns) / 1e9


class _Poll:
    """One snapshot against the previous marks."""

    def __init__(self, previous: Marks, snapshot: Snapshot) -> None:
        self.previous = previous
        self.snapshot = snapshot
        self.clock = _Clock(snapshot)
        self.rebooted = previous.taken_ns is not None and previous.boot_id != snapshot.boot_id
        if previous.taken_ns is None:
            since = self.clock.now_ns  # the very first poll: the baseline
        elif self.rebooted:
            since = 0  # metered through the reboot: everything of this boot is new
        else:
            since = previous.since_ns if previous.since_ns is not None else previous.taken_ns
        self.since_ns = since
        self.out = Outcome(
            marks=Marks(
                taken_at=snapshot.taken_at,
                taken_ns=self.clock.now_ns,
                boot_id=snapshot.boot_id,
                since_ns=since,
                retired={} if self.rebooted else dict(previous.retired),
            )
        )
        self.ended: dict[str, list[ExitedContainer]] = defaultdict(list)
        for run in snapshot.exited_containers:
            self.ended[run.pod_uid].append(run)

    def unseen_is_new(self, uid: str, started_ns: int | None) -> bool:
        """Whether a pod the meter has no mark of is billed from zero: when it started
        after the baseline (the spool's first poll), since then the meter has seen every
        pod the node ran, so nothing of this one was billed yet. A pod that was running
        before (before the agent was installed, or its spool was lost) is a baseline,
        and so is one whose mark expired. Process starts are truncated to a tick, so one
        within a tick of the baseline counts as after it."""
        if self.previous.taken_ns is None:
            return False
        if self.rebooted:
            return True
        if uid in self.previous.retired:
            return False
        return started_ns is not None and started_ns + TICK_NS > self.since_ns

    @staticmethod
    def after(started_ns: int | None, cursor: int | None) -> bool:
        """Whether a container (or a recreated cgroup) of a known pod started after the
        pod's last reading: its counter then counts from zero."""
        return cursor is None or (started_ns is not None and started_ns + TICK_NS > cursor)

    def old(self, uid: str) -> PodMark | None:
        return None if self.rebooted else self.previous.pods.get(uid)


def compute(previous: Marks, snapshot: Snapshot) -> Outcome:
    """The readings between ``previous`` and ``snapshot``, and the marks to start from next."""
    poll = _Poll(previous, snapshot)
    by_id = {c.id: c for c in snapshot.containers}
    seen: set[str] = set()
    for pod in snapshot.pods:
        seen.add(pod.uid)
        members = [by_id[cid] for cid in pod.container_ids if cid in by_id]
        _live(poll, pod, members)
    for pod in snapshot.exited_pods:
        if pod.uid in seen:  # live in this very snapshot: its live reading is newer
            continue
        seen.add(pod.uid)
        _exited(poll, pod)
    now = poll.clock.now_ns
    for uid, mark in ({} if poll.rebooted else previous.pods).items():
        if uid in seen:
            continue
        if now - mark.seen_ns <= MARK_RETENTION_NS:
            poll.out.marks.pods[uid] = mark  # between containers, or its tombstone is late
            continue
        poll.out.marks.retired[uid] = now
        if not mark.finished:
            poll.out.lost_pods += 1
    retired = poll.out.marks.retired
    for uid in [u for u, at in retired.items() if now - at > RETIRED_NS or u in seen]:
        del retired[uid]
    while len(retired) > MAX_RETIRED:
        del retired[next(iter(retired))]
    if poll.rebooted:
        poll.out.lost_pods += sum(1 for m in previous.pods.values() if not m.finished)
    return poll.out


def _counter(before: int | None, now: int | None, new: bool) -> tuple[int | None, bool]:
    """(delta, reset): None for a baseline or an unreadable counter."""
    if now is None:
        return None, False
    if before is not None and now >= before:
        return now - before, False
    return (now if new else None), before is not None


def _live(poll: _Poll, pod: Pod, members: list[Container]) -> None:
    clock = poll.clock
    old = poll.old(pod.uid)
    pod_ns = cpu_of(pod.usage)
    if pod_ns is None and old is not None and old.cpu_ns is not None:
        # the pod counter was readable before: wait for it rather than lose exited CPU
        poll.out.marks.pods[pod.uid] = old.model_copy(update={"seen_ns": clock.now_ns})
        return
    ended = poll.ended.get(pod.uid, [])
    marked = old.containers if old is not None else {}
    starts = [_container_start(clock, c, marked.get(c.id)) for c in members]
    starts += [clock.of(r.started_boottime, r.started_at) for r in ended]
    known = [s for s in starts if s is not None]
    started_ns = _earliest(known, old)
    new = old is None and poll.unseen_is_new(pod.uid, started_ns)
    cursor = old.at_ns if old is not None else None
    reading = _Reading(poll, pod, old, cursor, started_ns, new)
    reading.counters(pod.usage, min(known, default=None))
    over = {r.id for r in ended}  # emptied between discovery and now: its end is exact
    for c in members:
        if c.id not in over:
            reading.live_container(c)
    for run in ended:
        reading.ended_container(run)
    reading.memory(pod.usage)
    reading.finish(end_ns=clock.now_ns, end_at=clock.now_at, life_end_ns=None)


def _exited(poll: _Poll, pod: Pod) -> None:
    clock = poll.clock
    old = poll.old(pod.uid)
    final = cpu_of(pod.usage)
    if final is None:  # no final reading after all: as if the pod was not listed
        if old is not None:
            poll.out.marks.pods[pod.uid] = old.model_copy(update={"seen_ns": clock.now_ns})
        return
    exit_ns = clock.of(pod.exited_boottime, pod.exited_at)
    exit_ns = clock.now_ns if exit_ns is None else min(exit_ns, clock.now_ns)
    ended = poll.ended.get(pod.uid, [])
    starts = [clock.of(pod.started_boottime, pod.started_at)]
    starts += [clock.of(r.started_boottime, r.started_at) for r in ended]
    known = [s for s in starts if s is not None]
    started_ns = _earliest(known, old)
    if old is None:
        new = poll.unseen_is_new(pod.uid, started_ns)
        if not new:  # ran before the previous poll and was never seen: a baseline
            poll.out.marks.pods[pod.uid] = _finished_mark(clock, final, started_ns)
            return
    elif old.cpu_ns is None or final < old.cpu_ns or (old.finished and final == old.cpu_ns):
        # billed through its containers so far, or a reading no newer than the mark
        poll.out.marks.pods[pod.uid] = old.model_copy(update={"seen_ns": clock.now_ns})
        return
    else:
        new = False
    reading = _Reading(poll, pod, old, None if old is None else old.at_ns, started_ns, new)
    reading.counters(pod.usage, min(known, default=None))
    reading.life_end_ns = exit_ns  # no container ran past its pod (their events race)
    for run in ended:
        reading.ended_container(run)
    reading.memory(pod.usage)
    end_ns = max(exit_ns, reading.cursor if reading.cursor is not None else exit_ns)
    reading.finish(end_ns=end_ns, end_at=clock.wall(end_ns), life_end_ns=exit_ns, finished=True)


def _container_start(clock: _Clock, c: Container, old: ContainerMark | None) -> int | None:
    """When a running container started: its cgroup filling when the exit watcher saw
    that (the kernel's own account of its running time), else its earliest process; and
    never later than a start seen before (a pass may miss the first process and meet only
    a later one, which is what it would report as the container's)."""
    if c.filled_boottime is not None and clock.boot:
        start: int | None = ns(c.filled_boottime)
    else:
        start = clock.of(c.started_boottime, c.started_at)
    earlier = old.started_ns if old is not None else None
    return min((v for v in (start, earlier) if v is not None), default=None)


def _earliest(starts: list[int], old: PodMark | None) -> int | None:
    """The pod's first start: the earliest of everything it ever ran."""
    if old is not None and old.started_ns is not None:
        starts = [*starts, old.started_ns]
    return min(starts, default=None)


def _finished_mark(clock: _Clock, final: int, started_ns: int | None) -> PodMark:
    return PodMark(
        at=clock.now_at,
        at_ns=clock.now_ns,
        seen_ns=clock.now_ns,
        cpu_ns=final,
        started_ns=started_ns,
        finished=True,
    )


class _Reading:
    """One pod's interval being put together: counters, containers, memory."""

    def __init__(
        self,
        poll: _Poll,
        pod: Pod,
        old: PodMark | None,
        cursor: int | None,
        started_ns: int | None,
        new: bool,
    ) -> None:
        self.poll = poll
        self.pod = pod
        self.old = old
        self.cursor = cursor
        self.started_ns = started_ns
        self.new = new
        self.baseline = old is None and not new
        now = poll.clock
        self.mark = PodMark.model_construct(  # our own integers: nothing to validate
            at=now.now_at,
            at_ns=now.now_ns,
            seen_ns=now.now_ns,
            cpu_ns=None,
            user_ns=None,
            system_ns=None,
            series=old.series if old is not None else 0,
            started_ns=started_ns,
            containers={},
            names=list(old.names) if old is not None else [],
            working_set=None,
            peak=None,
            finished=False,
        )
        self.cpu: int | None = None
        self.user = 0
        self.system = 0
        self.counter_start: int | None = None
        self.uses: dict[str, ContainerUse] = {}
        self.restarts = 0
        self.runtime = 0
        self.working_set: int | None = None
        self.byte_ns = 0
        self.current: int | None = None
        self.peak: int | None = None
        self.started_in_interval: list[tuple[int, str]] = []
        self.life_end_ns: int | None = None

    # -- the pod's own counters

    def counters(self, usage: Usage | None, current_start: int | None) -> None:
        """The pod counter's delta; ``current_start`` is when what runs now started (a
        recreated cgroup counts from zero when that was after the last poll)."""
        old, new = self.old, self.new
        cpu = usage.cpu if usage is not None else None
        now = cpu.usage_ns if cpu is not None else None
        before = old.cpu_ns if old is not None else None
        recreated_new = self.poll.after(current_start, self.cursor)
        delta, reset = _counter(before, now, new or recreated_new)
        if reset:
            self.poll.out.resets += 1
            self.mark.series += 1
            self.mark.started_ns = current_start
        self.mark.cpu_ns = now
        if cpu is not None:
            self.mark.user_ns, self.mark.system_ns = cpu.user_ns, cpu.system_ns
        if delta is None:
            return
        self.cpu = delta
        self.counter_start = 0 if (reset or before is None) else before
        if cpu is None:
            return
        fresh = reset or old is None
        self.user = _part(old.user_ns if old else None, cpu.user_ns, fresh)
        self.system = _part(old.system_ns if old else None, cpu.system_ns, fresh)

    # -- containers

    def _use(self, cid: str, name: str | None, cpu: int = 0, runtime: int = 0) -> None:
        before = self.uses.get(cid)
        if before is None:
            self.uses[cid] = ContainerUse(name=name, cpu_ns=cpu, runtime_ns=runtime)
        else:
            self.uses[cid] = ContainerUse(
                name=before.name or name,
                cpu_ns=before.cpu_ns + cpu,
                runtime_ns=before.runtime_ns + runtime,
            )

    def _ran(self, start: int | None, name: str | None) -> None:
        """A run that started in this interval: a restart if its name ran before."""
        if name is None:
            return
        since = self.cursor
        if start is not None and (since is None or start > since):
            self.started_in_interval.append((start, name))
        elif name not in self.mark.names:
            self.mark.names.append(name)

    def live_container(self, c: Container) -> None:
        if c.sandbox:
            return
        clock = self.poll.clock
        old = self.old.containers.get(c.id) if self.old is not None else None
        now = cpu_of(c.usage)
        recreated = old is not None and now is not None and now < old.cpu_ns
        start = _container_start(clock, c, None if recreated else old)
        self._ran(start, c.name)
        if self.baseline:
            self._mark_container(c, start)
            return
        runtime = overlap_ns(start, None, self.cursor, clock.now_ns)
        cpu: int | None = None
        if now is not None:
            new = self.new or self.poll.after(start, self.cursor)
            cpu, reset = _counter(old.cpu_ns if old else None, now, new)
            self.poll.out.resets += reset
        elif old is not None:
            self.mark.containers[c.id] = old.model_copy(update={"started_ns": start})
        self._mark_container(c, start)
        self._use(c.id, c.name, cpu or 0, runtime)

    def _mark_container(self, c: Container, start: int | None) -> None:
        now = cpu_of(c.usage)
        if now is not None:
            self.mark.containers[c.id] = ContainerMark.model_construct(
                cpu_ns=now, name=c.name, started_ns=start
            )

    def ended_container(self, run: ExitedContainer) -> None:
        if run.sandbox:
            return
        clock = self.poll.clock
        end = clock.of(run.exited_boottime, run.exited_at)
        start = clock.of(run.started_boottime, run.started_at)
        if self.baseline or end is None or (self.cursor is not None and end <= self.cursor):
            return  # accounted by an earlier poll (the list repeats), or never to be billed
        self._ran(start, run.name)
        old = self.old.containers.get(run.id) if self.old is not None else None
        self.mark.containers.pop(run.id, None)
        if self.life_end_ns is not None:
            end = min(end, self.life_end_ns)
        runtime = overlap_ns(start, end, self.cursor, clock.now_ns)
        final = cpu_of(run.usage)
        cpu = 0
        if final is not None:
            if old is not None and final >= old.cpu_ns:
                cpu = final - old.cpu_ns
            elif old is None and (self.new or self.poll.after(start, self.cursor)):
                cpu = final
        self._use(run.id, run.name, cpu, runtime)

    def _to_vanished(
        self, uses: dict[str, ContainerUse], remainder: int
    ) -> tuple[dict[str, ContainerUse], int]:
        """Without a record of its end (no exit watcher), a container that was running at
        the last poll and is gone now used what no live container accounts for: the
        remainder is its (or, for several, ``<exited>``'s)."""
        if not remainder or self.old is None:
            return uses, remainder
        gone = [cid for cid in self.old.containers if cid not in self.mark.containers]
        gone = [cid for cid in gone if cid not in uses]
        if not gone:
            return uses, remainder
        cid = gone[0] if len(gone) == 1 else EXITED
        name = self.old.containers[gone[0]].name if len(gone) == 1 else EXITED
        out = dict(uses)
        before = out.get(cid)
        out[cid] = ContainerUse(
            name=name,
            cpu_ns=remainder + (before.cpu_ns if before else 0),
            runtime_ns=before.runtime_ns if before else 0,
            restarts=before.restarts if before else 0,
        )
        return out, 0

    # -- memory

    def memory(self, usage: Usage | None) -> None:
        memory = usage.memory if usage is not None else None
        if memory is None:
            return
        ws = memory.working_set_bytes
        self.working_set, self.current = ws, memory.current_bytes
        self.mark.working_set, self.mark.peak = ws, memory.peak_bytes
        before = self.old.peak if self.old is not None else None
        if memory.peak_bytes is not None and (before is None or memory.peak_bytes > before):
            self.peak = memory.peak_bytes  # the high-water mark rose in this interval

    # -- the reading

    def finish(
        self, *, end_ns: int, end_at: float, life_end_ns: int | None, finished: bool = False
    ) -> None:
        out = self.poll.out
        self.mark.finished = finished
        self.mark.names.extend(_restarts(self, self.mark.names))
        out.marks.pods[self.pod.uid] = self.mark
        if self.baseline:
            return
        if self.cpu is None:
            if self.mark.cpu_ns is not None:
                return  # a reset counter that started before the last poll: a new baseline
            self.cpu = sum(u.cpu_ns for u in self.uses.values())  # no pod counter at all
        clock = self.poll.clock
        since = self.cursor
        start_ns = since if since is not None else (self.started_ns or end_ns)
        start_ns = min(start_ns, end_ns)
        duration = overlap_ns(self.started_ns, life_end_ns, since, end_ns)
        previous_ws = self.old.working_set if self.old is not None else None
        if self.working_set is not None:
            span = end_ns - start_ns
            if previous_ws is None:
                self.byte_ns = self.working_set * span
            else:
                self.byte_ns = (previous_ws + self.working_set) * span // 2
        uses, remainder = _split(self.uses, self.cpu)
        uses, remainder = self._to_vanished(uses, remainder)
        reading = PodReading(
            pod_uid=self.pod.uid,
            namespace=self.pod.namespace,
            name=self.pod.name,
            start_at=self.old.at if self.old is not None else clock.wall(start_ns),
            start_ns=start_ns,
            end_at=end_at,
            end_ns=end_ns,
            cpu_ns=self.cpu,
            user_ns=self.user,
            system_ns=self.system,
            counter_start=self.counter_start,
            counter_end=self.mark.cpu_ns,
            series=self.mark.series,
            containers=uses,
            remainder_ns=remainder,
            duration_ns=duration,
            runtime_ns=sum(u.runtime_ns for u in uses.values()),
            restarts=sum(u.restarts for u in uses.values()),
            working_set=self.working_set,
            working_set_byte_ns=self.byte_ns,
            memory_current=self.current,
            memory_peak=self.peak,
            finished=finished,
        )
        if not reading.empty or finished:
            out.readings.append(reading)


def _part(before: int | None, now: int | None, fresh: bool) -> int:
    """A user or system counter's delta: all of it for a counter billed from zero, 0 when
    unknown or when it went backwards (their tick-based v1 values may wobble)."""
    if now is None:
        return 0
    if fresh:
        return now
    return 0 if before is None else max(now - before, 0)


def _restarts(reading: _Reading, names: list[str]) -> list[str]:
    """Count runs that started in the interval under a name that ran before (in time
    order), add them to their containers' uses; returns the names new to the pod."""
    seen = set(names)
    new_names: list[str] = []
    by_name: dict[str, int] = defaultdict(int)
    for _, name in sorted(reading.started_in_interval):
        if name in seen:
            by_name[name] += 1
        else:
            seen.add(name)
            new_names.append(name)
    for cid, use in list(reading.uses.items()):
        count = by_name.pop(use.name, 0) if use.name is not None else 0
        if count:
            reading.uses[cid] = ContainerUse(
                name=use.name, cpu_ns=use.cpu_ns, runtime_ns=use.runtime_ns, restarts=count
            )
    return new_names


def _split(uses: dict[str, ContainerUse], total: int) -> tuple[dict[str, ContainerUse], int]:
    """Container shares that add up to at most ``total`` (scaled down, by largest
    remainder, when their own deltas add up to more), and the rest."""
    claimed = sum(u.cpu_ns for u in uses.values())
    if claimed <= total:
        return uses, total - claimed
    shares = {cid: u.cpu_ns * total // claimed for cid, u in uses.items()}
    left = total - sum(shares.values())
    by_fraction = sorted(uses, key=lambda cid: (uses[cid].cpu_ns * total) % claimed, reverse=True)
    for cid in by_fraction[:left]:
        shares[cid] += 1
    scaled = {
        cid: ContainerUse(
            name=u.name, cpu_ns=shares[cid], runtime_ns=u.runtime_ns, restarts=u.restarts
        )
        for cid, u in uses.items()
    }
    return scaled, 0
