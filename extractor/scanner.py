"""One pass over a node → ``model.Snapshot``.

Discovery finds containers from /proc, accounting reads each container's and each pod's
cgroup once, runtime labels (``identify``) and fingerprints are plugged in by the caller.
Anything that goes wrong with one container lands in its ``errors``; only a node with no
/proc or no cgroup filesystem at all raises :class:`NodeUnreadable`.

Sandbox (pause) containers stay in the snapshot, marked ``sandbox=True``, without usage
of their own: what they use is counted in their pod's cgroup, which also keeps the CPU of
containers that exited since the previous pass.

A :class:`Scanner` kept across passes keeps the counter files open (one ``pread`` each
per pass; a cgroup whose files read the same bytes keeps its ``Usage`` object) and
remembers the processes it has read, watched through pidfds with their
/proc/<pid>/cgroup kept open, so a steady-state pass reads only new processes' files and
a periodic refresh one ``pread`` per known process. How many descriptors that may take
is sized from the node after every pass (``extractor.descriptors``), within
``keep_open`` or what the descriptor limit leaves. A record whose fields are those of
the previous pass is not validated again: an unchanged pod is the previous object
itself, an unchanged container a copy with only its run time moved (what a snapshot by
difference, ``contract.changes``, relies on).

The Scanner of ``extractor serve`` also owns the exit watcher (``extractor.exitwatch``):
its tombstones of recently emptied pods are every snapshot's ``exited_pods`` and its ended
container runs ``exited_containers``; with a ``state_dir`` they outlive the process. One-off
passes (``take_snapshot``) have none.

Every time in a snapshot comes from one reading of both clocks at the start of the pass
(``hostfs.clock``): a process's start is its boot-clock ticks, put on the wall clock by
that reading's offset, so it is exact to the kernel's tick (not a second early, as
``btime`` would make it). The meter compares these starts with its previous pass. A
process's wall-clock start is worked out once, when it is first met: the same start on
the boot clock keeps the same ``started_at``, so the offset's microsecond jitter from one
pass to the next does not make every container a changed record.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol, get_args

from extractor import descriptors
from extractor.cgroups.counters import gather, parse
from extractor.cgroups.counters import plan as plan_dirs
from extractor.cgroups.details import Details, details
from extractor.cgroups.files import V1_FILES, every_pass
from extractor.cgroups.layout import UNIFIED, CgroupFsError, Layout, detect, namespace_base
from extractor.contract import (
    Container,
    Fingerprint,
    Pod,
    Runtime,
    Snapshot,
    Usage,
    record_key,
    runtime_seconds,
)
from extractor.discover import Discoverer, Discovery, FoundContainer
from extractor.exitwatch import ExitWatcher, PassedContainer, PassedPod
from extractor.hostpaths import HostPaths
from extractor.netdev import NetworkReader, PodNetwork
from extractor.pidwatch import PidWatch, usable_for
from extractor.sysblock import BlockDevices
from extractor.tombstones import FILE_NAME, TombstoneFile
from hostfs import (
    KeptFiles,
    Moment,
    ProcReadError,
    ProcStat,
    boot_id,
    clock_ticks,
    read_cmdline,
    start_boottime,
)
from hostfs import now as clock_now

RUNTIMES: dict[str, Runtime] = {name: name for name in get_args(Runtime)}
WATCHER_READY_SECONDS = 2.0
"""How long a new Scanner waits for the exit watcher's first scan (it takes milliseconds)."""
RELEARN_EVERY = 360
"""Passes after which each cgroup's files are looked for again (a controller switched on
for a v2 subtree brings its files to cgroups that lacked them)."""
DETAILS_EVERY = 6
"""By default a kept cgroup's details are re-read every this many passes (a minute at the
exporter's default poll; ``extractor serve --details-every``): each file costs a warm pass
3–5 µs of cold kernel work per cgroup, and reading the 13 detail files of a v1 cgroup on
every pass would almost double it (``bench/README.md``)."""
STAMP_KEPT_SECONDS = 150.0
STAMP_KEPT_READS = 3
"""A re-reading of a cgroup's details that finds the very values of the last keeps that
reading's stamp, so a quiet container's record stays the same object and a poll by
difference does not carry it (``bench/README.md``); every ``STAMP_KEPT_READS``-th
re-reading restamps them anyway (each cgroup in its turn, spread like the rotation, so
no pass restamps many), and so does the first one ``STAMP_KEPT_SECONDS`` after the
stamp: a served stamp stays well within Prometheus' default lookback (5 min). A pod's
network is restamped with its cgroup's details."""

log = logging.getLogger(__name__)


class NodeUnreadable(Exception):
    """The options point at no /proc or no cgroup filesystem: no pass is possible."""


class Labels(Protocol):
    """What the runtime's own state says about a container (``extractor.identify``)."""

    @property
    def runtime(self) -> str | None: ...
    @property
    def namespace(self) -> str | None: ...
    @property
    def pod_name(self) -> str | None: ...
    @property
    def pod_uid(self) -> str | None: ...
    @property
    def container_name(self) -> str | None: ...
    @property
    def container_type(self) -> str | None: ...
    @property
    def sandbox_id(self) -> str | None: ...
    @property
    def image(self) -> str | None: ...


Identify = Callable[[str], Labels | None]


class FingerprintFn(Protocol):
    """A container's fingerprint for this pass (``extractor.fingerprinting``): given its
    processes and their stat as discovery read them, so a cached fingerprint is checked
    without reading anything again."""

    def __call__(
        self, container_id: str, pids: list[int], stats: Sequence[ProcStat] | None = None, /
    ) -> Fingerprint: ...


def node_name() -> str:
    """The Kubernetes node name when the DaemonSet passes it, else the host name."""
    return os.environ.get("NODE_NAME") or socket.gethostname()


class Scanner:
    """Takes snapshots of one node; reuse it across passes, ``close()`` it when done."""

    def __init__(
        self,
        paths: HostPaths,
        *,
        keep_open: int | None = None,
        watch_exits: bool = False,
        state_dir: str | None = None,
        clock: Callable[[], Moment] = clock_now,
        details_every: int = DETAILS_EVERY,
    ) -> None:
        if not os.path.isfile(os.path.join(paths.proc_root, "stat")):
            raise NodeUnreadable(f"{paths.proc_root!r} is not a proc filesystem (no stat file)")
        try:
            self.layout: Layout = detect(paths.cgroup_root)
        except CgroupFsError as e:
            raise NodeUnreadable(str(e)) from None
        self.paths = paths
        self.clock = clock
        self.boot_id = boot_id(paths.proc_root)
        self.state_dir = state_dir
        self.details_every = max(details_every, 1)
        self.hz = clock_ticks()
        self.errors: list[str] = []
        bases: dict[str, str] = {}
        for key in self.layout.hierarchies():
            try:
                bases[key] = namespace_base(self.layout, key, paths.proc_root)
            except CgroupFsError as e:
                bases[key] = "/"
                self.errors.append(str(e))
        self.allowance = descriptors.claim(self._held, keep_open)
        self.budget = descriptors.split(self.allowance.total, 0, 0)
        # Counter files and pods' net/dev are "counter files" to the budget (one each);
        # the details, read every few passes, have a pool of their own that gives way first.
        self.kept = KeptFiles(self.budget.counter_files)
        self.kept_details = KeptFiles(self.budget.detail_files)
        self._fresh = every_pass(self.layout)
        self.network = NetworkReader(paths.proc_root, 0)
        self._networks: dict[str, tuple[tuple[int, int], PodNetwork, float]] = {}
        self.devices = BlockDevices()
        watching = self.budget.processes > 0 and usable_for(paths.proc_root)
        self.watch = PidWatch(self.budget.processes) if watching else None
        self.discoverer = Discoverer(paths.proc_root, self.layout, bases, self.watch)
        self.passes = 0
        self._records: dict[str, tuple[dict[str, object], Container]] = {}
        self._next_records: dict[str, tuple[dict[str, object], Container]] = {}
        self._pods: dict[str, tuple[dict[str, Any], Pod]] = {}
        self._next_pods: dict[str, tuple[dict[str, Any], Pod]] = {}
        self._plans: dict[int, _Plan] = {}
        self.exits: ExitWatcher | None = None
        if watch_exits:
            self._start_exit_watcher()

    def _start_exit_watcher(self) -> None:
        if self.layout.unified is None:
            log.warning(
                "no cgroup2 hierarchy under %s: pods that exit between two passes lose "
                "the CPU they used since the last one",
                self.paths.cgroup_root,
            )
            return
        store = None
        if self.state_dir is not None:
            store = TombstoneFile(os.path.join(self.state_dir, FILE_NAME), self.boot_id)
        watcher = ExitWatcher(
            self.layout, hz=self.hz, proc_root=self.paths.proc_root, clock=self.clock, store=store
        )
        try:
            watcher.start()
        except (OSError, RuntimeError) as e:  # no descriptor or thread left: serve anyway
            watcher.close()
            log.error("exit watcher not started: %s", e)
            self.errors.append(f"exit watcher not started: {e}")  # in every snapshot
            return
        self.exits = watcher
        watcher.wait_ready(WATCHER_READY_SECONDS)

    def account(
        self, paths: dict[str, str], now: float | None = None
    ) -> tuple[Usage | None, list[str]]:
        """Usage of the cgroup whose path in each hierarchy is given, read at ``now``.

        The first reading of a cgroup learns which of its files exist (``gather``). Later
        passes read them again from kept descriptors, as groups, without Python per file:
        the ``every_pass`` files (CPU, memory usage and working set) on every pass, the
        details (peak, pids, limits, quota, OOM kills, block I/O, pressure) every
        ``DETAILS_EVERY`` passes, in rotation over the cgroups, stamped ``details_at``.
        Each cgroup looks for its files again every ``RELEARN_EVERY`` passes (a
        controller switched on brings new ones); any failure falls back to reading file
        by file, which says what failed. When a re-read gives the very bytes of the last
        one and the details were not re-read, the last ``Usage`` object itself is the
        answer: nothing is parsed or validated for a cgroup that stood still.
        """
        if not paths:
            return None, []
        plan = self._plan_for(paths)
        errors: list[str] = []
        if plan.names is not None:
            data = self._reread(plan, now)
            if data is not None:
                known = plan.known
                if data == plan.raw and plan.usage is not None and plan.usage_known is known:
                    return plan.usage, errors
                files = dict(zip(plan.names, data, strict=True))
                usage = parse(self.layout, files, plan.dirs, plan.cgroup, self.hz, errors, known)
                plan.remember(data, usage, known, errors)
                return usage, errors
        files = gather(self.layout, plan.dirs, self._read, errors)
        known = details(self.layout, files, plan.dirs, self.hz)
        if not errors and not known.errors:
            # read with the rest now (no stamp); when later passes reuse them, read then
            later = known if now is None else dataclasses.replace(known, read_at=now)
            plan.learn(files, later, self.details_every)
            plan.detailed_at = plan.restamped_at = now
        return parse(self.layout, files, plan.dirs, plan.cgroup, self.hz, errors, known), errors

    def _read(self, path: str) -> bytes:
        """A complete reading's file, kept in the pool its kind is re-read from."""
        name = path[path.rfind("/") + 1 :]
        return (self.kept if name in self._fresh else self.kept_details).read(path)

    def _reread(self, plan: _Plan, now: float | None) -> list[bytes] | None:
        """The learned files again, from kept descriptors or, for a cgroup the descriptor
        budget has no room for, by path; None if that is not possible (or time to
        relearn). The details are parsed when read, kept in between, either way."""
        plan.left -= 1
        if plan.left <= 0 or plan.names is None:
            return None
        kept = self.kept
        data = kept.read_group(plan.paths_of) or kept.read_beyond(plan.paths_of)
        if data is None:
            return None
        if plan.detail_paths:
            plan.due -= 1
            pool = self.kept_details
            if plan.due <= 0:
                got = pool.read_group(plan.detail_paths) or pool.read_beyond(plan.detail_paths)
                if got is None:
                    return None
                # memory.stat (read every pass) also holds details: RSS and cache.
                detailed = dict(zip(plan.names, data, strict=True))
                detailed.update(zip(plan.detail_names, got, strict=True))
                fresh = details(self.layout, detailed, plan.dirs, self.hz, now)
                plan.keeps -= 1
                if plan.keeps <= 0 or not _same_details(plan.known, fresh):
                    plan.known, plan.keeps, plan.restamped_at = fresh, STAMP_KEPT_READS, now
                plan.due = self.details_every
                plan.detailed_at = now
            else:
                pool.keep_group(plan.detail_paths)
        return data

    def _plan_for(self, paths: dict[str, str]) -> _Plan:
        plan = self._plans.get(id(paths))
        return plan if plan is not None and plan.paths is paths else self._plan(paths)

    def _plan(self, paths: dict[str, str]) -> _Plan:
        """Where a cgroup's files are, worked out once per ``paths`` dict: discovery hands
        the same dict for a container on every pass, so a warm pass skips this."""
        if len(self._plans) > 65536:
            self._plans.clear()
        dirs, cgroup = plan_dirs(self.layout, paths)
        # The dict itself is kept in the entry, so its id cannot be reused while cached.
        entry = _Plan(self.layout, paths, dirs, cgroup)
        self._plans[id(paths)] = entry
        return entry

    def take(
        self, *, identify: Identify | None = None, fingerprint: FingerprintFn | None = None
    ) -> Snapshot:
        moment = self.clock()
        if self.exits is not None and identify is not None and self.exits.namer is None:
            self.exits.namer = _namer(identify)
        try:
            found = self.discoverer.run()
        except OSError as e:
            raise NodeUnreadable(f"{self.paths.proc_root}: {e.strerror or e}") from None
        self._next_records, self._next_pods = {}, {}
        snapshot = Snapshot(
            node=node_name(),
            taken_at=moment.wall,
            taken_boottime=moment.boot,
            boot_id=self.boot_id,
            cgroup_version=self.layout.version,
            errors=[*self.errors, *found.errors],
        )
        pods: dict[str, dict[str, Any]] = {}
        pod_paths: dict[str, dict[str, str]] = {}
        through: dict[str, tuple[bool, int, int]] = {}
        """Per pod, the process its network is read through: a sandbox's before an
        application's, then the oldest ((not sandbox, start ticks, pid), least first)."""
        for cid, entry in sorted(found.containers.items()):
            first = min(entry.stats, key=_started)
            container = self._container(cid, entry, first, identify, fingerprint, moment)
            snapshot.containers.append(container)
            uid = container.pod_uid
            if uid is None:
                continue
            pod = pods.get(uid)
            if pod is None:
                pods[uid] = pod = {"uid": uid, "qos": container.qos, "container_ids": []}
            pod["container_ids"].append(cid)
            if container.namespace and not pod.get("namespace"):
                pod["namespace"], pod["name"] = container.namespace, container.pod_name
            if entry.ref.pod_paths and uid not in pod_paths:
                pod_paths[uid] = entry.ref.pod_paths
            way = (not container.sandbox, first.start_ticks, first.pid)
            best = through.get(uid)
            if best is None or way < best:
                through[uid] = way
        networks: dict[str, tuple[tuple[int, int], PodNetwork, float]] = {}
        for uid in sorted(pods):
            fields = pods[uid]
            if uid in pod_paths:
                fields["usage"], fields["errors"] = self.account(pod_paths[uid], moment.wall)
            else:
                fields["errors"] = ["no pod cgroup above its containers' cgroups"]
            _, ticks, pid = through[uid]
            due, restamp = self._network_due(pod_paths.get(uid), moment.wall)
            net, read_at = self._network(uid, due, restamp, (pid, ticks), moment.wall, networks)
            fields["network"], fields["host_network"] = net.interfaces, net.host_network
            fields["network_at"] = read_at
            if net.error is not None:
                fields["errors"].append(net.error)
            snapshot.pods.append(self._pod(uid, fields))
        self._networks = networks
        if self.exits is not None:
            self._exited(snapshot, pods, pod_paths, found)
        snapshot.block_devices = self.devices.names(snapshot)
        self.kept.end_pass()
        self.kept_details.end_pass()
        self.network.end_pass()
        self._records, self._next_records = self._next_records, {}
        self._pods, self._next_pods = self._next_pods, {}
        self._size()
        return snapshot

    def _pod(self, uid: str, fields: dict[str, Any]) -> Pod:
        """A pod's record, the previous pass's object itself when nothing in it changed
        (its reused Usage and network are the same objects: one dict comparison)."""
        kept = self._pods.get(uid)
        pod = kept[1] if kept is not None and kept[0] == fields else Pod.model_validate(fields)
        self._next_pods[uid] = (fields, pod)
        return pod

    def _held(self) -> int:
        """Descriptors kept now: counter and net/dev files, a pidfd and a cgroup file per
        watched process."""
        pools = (getattr(self, "kept", None), getattr(self, "kept_details", None))
        network = getattr(self, "network", None)
        watch = getattr(self, "watch", None)
        files = sum(len(p) for p in pools if p is not None) + (len(network) if network else 0)
        return files + descriptors.PER_PROCESS * (len(watch) if watch is not None else 0)

    def _size(self) -> None:
        """Share the descriptor budget by what this pass needed. The first sizing is for
        the caller to report (``extractor serve`` puts it in its start line); a later
        change in whether everything fits is logged here."""
        before = self.budget
        total = self.allowance.total
        files, nets = self.kept.wanted, self.network.wanted
        listed, details = self.discoverer.listed, self.kept_details.wanted
        self.budget = budget = descriptors.split(total, files + nets, listed, details)
        # The net/dev share in proportion to what the pods need of it.
        self.network.capacity = budget.counter_files * nets // max(files + nets, 1)
        self.kept.capacity = budget.counter_files - self.network.capacity
        self.kept_details.capacity = budget.detail_files
        self.kept.trim()
        self.kept_details.trim()
        self.network.trim()
        if self.watch is not None:
            self.watch.capacity = budget.processes
            self.discoverer.shrink(budget.processes)
        self.passes += 1
        if self.passes > 1 and total and budget.everything != before.everything:
            level = logging.INFO if budget.everything else logging.WARNING
            log.log(level, "descriptors: %s", budget.describe())

    def _network_due(self, paths: dict[str, str] | None, now: float) -> tuple[bool, bool]:
        """Whether this pass read the details of the pod cgroup at ``paths``, and whether
        it gave them a new stamp: both when it could not keep them (no pod cgroup, one
        read whole, or without a plan yet)."""
        plan = self._plans.get(id(paths)) if paths is not None else None
        if plan is None or plan.names is None:
            return True, True
        return plan.detailed_at == now, plan.restamped_at == now

    def _network(
        self,
        uid: str,
        due: bool,
        restamp: bool,
        process: tuple[int, int],
        now: float,
        into: dict[str, tuple[tuple[int, int], PodNetwork, float]],
    ) -> tuple[PodNetwork, float]:
        """The pod's network and when it was read: read with its cgroup's details
        (``due``), else as last read through the same process. A reading that finds the
        last one's counters keeps its object and stamp unless the details were restamped
        (``restamp``; ``STAMP_KEPT_READS``)."""
        last = self._networks.get(uid)
        if last is not None and last[0] == process and not due:
            self.network.keep(*process)
            into[uid] = last
            return last[1], last[2]
        net = self.network.read(*process)
        if (
            last is not None
            and last[0] == process
            and not restamp
            and net.error is None
            and (net.interfaces, net.host_network) == (last[1].interfaces, last[1].host_network)
        ):
            into[uid] = last
            return last[1], last[2]
        into[uid] = (process, net, now)
        return net, now

    def _exited(
        self,
        snapshot: Snapshot,
        pods: dict[str, dict[str, Any]],
        pod_paths: dict[str, dict[str, str]],
        found: Discovery,
    ) -> None:
        """The watcher's tombstones, told what this pass read so they match it.

        Called after discovery: a pod this pass saw live is left out of ``exited_pods``
        (its reading here is newer), and one it did not see (between two containers of a
        pod without a sandbox) is listed by its tombstone, which a refill no longer
        removes; so every pod the meter knows is in one list or the other, or is waited
        for, never silently dropped.
        """
        assert self.exits is not None
        by_id = {c.id: c for c in snapshot.containers}
        passed = {}
        for uid, paths in pod_paths.items():
            pod = pods[uid]
            known = {}
            for cid in pod["container_ids"]:
                c, entry = by_id[cid], found.containers[cid]
                known[cid] = PassedContainer(
                    paths=entry.ref.paths,
                    name=c.name,
                    sandbox=c.sandbox,
                    started_boottime=c.started_boottime,
                )
            passed[uid] = PassedPod(paths, pod.get("namespace"), pod.get("name"), known)
        try:
            collected = self.exits.collect(passed, pods.keys())
        except Exception as e:  # the watcher must never cost a pass
            snapshot.errors.append(f"exit watcher: {type(e).__name__}: {e}")
            return
        snapshot.exited_pods = sorted(collected.pods, key=lambda p: p.uid)
        snapshot.exited_containers = sorted(
            collected.containers, key=lambda c: record_key("exited_containers", c)
        )
        snapshot.errors.extend(collected.errors)
        for cid, boot in collected.filled.items():
            filled = by_id.get(cid)
            if filled is not None:
                filled.filled_boottime = boot

    def _container(
        self,
        cid: str,
        entry: FoundContainer,
        first: ProcStat,
        identify: Identify | None,
        fingerprint: FingerprintFn | None,
        now: Moment,
    ) -> Container:
        """The container's record: its fields gathered, then validated only when they
        differ from the previous pass's (a reused Usage and fingerprint are the same
        objects, so an unchanged container costs one dict comparison and a copy). The
        record kept for the next pass is never the one handed out, which the pass may
        still amend (the exit watcher's ``filled_boottime``)."""
        kept = self._records.get(cid)
        fields = self._fields(cid, entry, first, identify, fingerprint, now, kept)
        started = fields["started_at"]
        boot = fields["started_boottime"]
        elapsed = runtime_seconds(
            now.wall,
            started if isinstance(started, float) else None,
            now.boot,
            boot if isinstance(boot, float) else None,
        )
        if kept is not None and kept[0] == fields:
            pristine = kept[1]
        else:
            pristine = Container.model_validate(fields)
        self._next_records[cid] = (fields, pristine)
        return pristine.model_copy(update={"runtime_seconds": elapsed})

    def _fields(
        self,
        cid: str,
        entry: FoundContainer,
        first: ProcStat,
        identify: Identify | None,
        fingerprint: FingerprintFn | None,
        now: Moment,
        kept: tuple[dict[str, object], Container] | None,
    ) -> dict[str, object]:
        """Everything a Container record says but the time it has run (a pass builds 250
        of these; one constructor call is much cheaper than a dozen attribute sets)."""
        identity = entry.ref.identity
        errors = list(entry.ref.errors)
        fields: dict[str, object] = {
            "id": cid,
            "runtime": identity.runtime or "unknown",
            "pod_uid": identity.pod_uid,
            "qos": identity.qos,
            "pids": entry.pids,
            "errors": errors,
        }
        sandbox = identity.sandbox
        labels = _labels(cid, identify, errors)
        if labels is not None:
            sandbox = _apply(fields, labels) or sandbox
        elif not sandbox:
            sandbox = self._looks_like_pause(entry)
        fields["sandbox"] = sandbox
        started = start_boottime(first, self.hz)
        fields["started_boottime"] = started
        if kept is not None and kept[0].get("started_boottime") == started:
            fields["started_at"] = kept[0]["started_at"]  # the same start, put on the wall once
        else:
            fields["started_at"] = now.wall_of(started)
        paths = entry.ref.paths
        if paths:
            fields["cgroup"] = self._plan_for(paths).cgroup
        if not sandbox:
            fields["usage"], usage_errors = self.account(paths, now.wall)
            errors.extend(usage_errors)
            if fingerprint is not None:
                try:
                    fields["fingerprint"] = fingerprint(cid, entry.pids, entry.stats)
                except Exception as e:  # a detector bug costs this container its fingerprint
                    fields["fingerprint"] = Fingerprint(error=f"fingerprint failed: {e}")
        return fields

    def _looks_like_pause(self, entry: FoundContainer) -> bool:
        """Without runtime labels: a single process that is the pause binary."""
        if len(entry.stats) != 1:
            return False
        stat = entry.stats[0]
        if stat.comm == "pause":
            return True
        try:
            argv = read_cmdline(self.paths.proc_root, stat.pid)
        except ProcReadError:
            return False
        return argv is not None and argv[:1] == ["/pause"]

    def close(self) -> None:
        if self.exits is not None:
            self.exits.close()
        self.discoverer.close()
        self.kept.close()
        self.kept_details.close()
        self.network.close()
        if self.watch is not None:
            self.watch.close()
        self.allowance.release()


class _Plan:
    """One cgroup's directories and, once learned, the files a reading takes: those of
    every pass (``names`` at ``paths_of``) and the details (at ``detail_paths``, parsed
    into ``known``, read again in ``due`` passes, their stamp kept for ``keeps`` more
    re-readings at most); relearned in ``left`` passes. ``raw``,
    ``usage`` and ``usage_known``: the last clean re-read's bytes, what they made and the
    details it was made with."""

    __slots__ = (
        "cgroup",
        "detail_names",
        "detail_paths",
        "detailed_at",
        "dirs",
        "due",
        "keeps",
        "known",
        "layout",
        "left",
        "names",
        "paths",
        "paths_of",
        "raw",
        "restamped_at",
        "usage",
        "usage_known",
    )

    def __init__(
        self, layout: Layout, paths: dict[str, str], dirs: dict[str, str], cgroup: str
    ) -> None:
        self.layout = layout
        self.paths = paths
        self.dirs = dirs
        self.cgroup = cgroup
        self.names: tuple[str, ...] | None = None
        self.paths_of: tuple[str, ...] = ()
        self.detail_names: tuple[str, ...] = ()
        self.detail_paths: tuple[str, ...] = ()
        self.known = Details()
        self.detailed_at: float | None = None
        """When the details were last read from the files (their stamp may be older)."""
        self.restamped_at: float | None = None
        """When they last got a new stamp."""
        self.keeps = STAMP_KEPT_READS
        self.due = 0
        self.left = 0
        self.raw: list[bytes] | None = None
        self.usage: Usage | None = None
        self.usage_known: Details | None = None

    def remember(self, raw: list[bytes], usage: Usage, known: Details, errors: list[str]) -> None:
        """Keep a re-read's answer for the next pass to hand back if nothing moved; one
        with errors is never reused (the next pass says them again)."""
        if errors:
            self.raw, self.usage, self.usage_known = None, None, None
        else:
            self.raw, self.usage, self.usage_known = raw, usage, known

    def learn(self, files: dict[str, bytes], known: Details, every: int) -> None:
        """Remember what a complete reading took. Cgroups met in the same pass are spread
        over the rotations (by their path's hash), so no pass reads every detail."""
        where = self._where
        fresh = every_pass(self.layout)
        self.names = tuple(n for n in files if n in fresh)
        self.paths_of = tuple(where(n) for n in self.names)
        self.detail_names = tuple(n for n in files if n not in fresh)
        self.detail_paths = tuple(where(n) for n in self.detail_names)
        self.known = known
        spread = hash(self.cgroup)
        self.due = 1 + spread % every
        self.keeps = 1 + spread // every % STAMP_KEPT_READS
        self.left = RELEARN_EVERY + spread % RELEARN_EVERY

    def _where(self, name: str) -> str:
        key = UNIFIED if self.layout.version == "v2" else V1_FILES[name]
        return f"{self.dirs[key]}/{name}"


def _same_details(old: Details, fresh: Details) -> bool:
    """Whether ``fresh`` says what ``old`` says, and ``old``'s stamp may still be kept
    (``STAMP_KEPT_SECONDS``)."""
    if old.read_at is None or fresh.read_at is None:
        return False
    if fresh.read_at - old.read_at >= STAMP_KEPT_SECONDS:
        return False
    return dataclasses.replace(fresh, read_at=old.read_at) == old


def _started(stat: ProcStat) -> int:
    return stat.start_ticks


def _labels(cid: str, identify: Identify | None, errors: list[str]) -> Labels | None:
    if identify is None:
        return None
    try:
        return identify(cid)
    except Exception as e:  # hostile runtime state costs this container its labels
        errors.append(f"runtime labels unreadable: {e}")
        return None


def _apply(fields: dict[str, object], labels: Labels) -> bool:
    """Fill in what the runtime knows; the path's own runtime wins unless it is unknown.
    True when the runtime says the container is its pod's sandbox."""
    runtime = labels.runtime
    if fields["runtime"] == "unknown" and runtime is not None and runtime in RUNTIMES:
        fields["runtime"] = RUNTIMES[runtime]
    fields["name"] = labels.container_name
    fields["namespace"] = labels.namespace
    fields["pod_name"] = labels.pod_name
    fields["pod_uid"] = fields["pod_uid"] or labels.pod_uid
    fields["image"] = labels.image
    fields["sandbox_id"] = labels.sandbox_id
    return labels.container_type == "sandbox"


def _namer(identify: Identify) -> Callable[[str], tuple[str | None, bool] | None]:
    """The exit watcher's view of ``identify`` (called from its thread, hence the lock:
    the runtime-state reader keeps a cache)."""
    lock = threading.Lock()

    def name(cid: str) -> tuple[str | None, bool] | None:
        with lock:
            labels = identify(cid)
        if labels is None:
            return None
        return labels.container_name, labels.container_type == "sandbox"

    return name


def take_snapshot(
    paths: HostPaths,
    *,
    identify: Identify | None = None,
    fingerprint: FingerprintFn | None = None,
    scanner: Scanner | None = None,
    clock: Callable[[], Moment] = clock_now,
) -> Snapshot:
    """One pass; pass a long-lived ``scanner`` to make repeated passes cheap."""
    if scanner is not None:
        return scanner.take(identify=identify, fingerprint=fingerprint)
    own = Scanner(paths, keep_open=0, clock=clock)
    try:
        return own.take(identify=identify, fingerprint=fingerprint)
    finally:
        own.close()
