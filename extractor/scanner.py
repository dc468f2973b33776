"""One pass over a node → ``model.Snapshot``.

Discovery finds containers from /proc, accounting reads each container's and each pod's
cgroup once, runtime labels (``identify``) and fingerprints are plugged in by the caller.
Anything that goes wrong with one container lands in its ``errors``; only a node with no
/proc or no cgroup filesystem at all raises :class:`NodeUnreadable`.

Sandbox (pause) containers stay in the snapshot, marked ``sandbox=True``, without usage
of their own: what they use is counted in their pod's cgroup, which also keeps the CPU of
containers that exited since the previous pass.

A :class:`Scanner` kept across passes keeps the counter files open (one ``pread`` each
per pass) and remembers the processes it has read, watched through pidfds with their
/proc/<pid>/cgroup kept open (all bounded by ``keep_open`` descriptors), so a
steady-state pass reads only new processes' files and a periodic refresh one ``pread``
per known process.

The Scanner of ``extractor serve`` also owns the exit watcher (``extractor.exitwatch``):
its tombstones of recently emptied pods are every snapshot's ``exited_pods`` and its ended
container runs ``exited_containers``; with a ``state_dir`` they outlive the process. One-off
passes (``take_snapshot``) have none.

Every time in a snapshot comes from one reading of both clocks at the start of the pass
(``hostfs.clock``): a process's start is its boot-clock ticks, put on the wall clock by
that reading's offset, so it is exact to the kernel's tick (not a second early, as
``btime`` would make it). The meter compares these starts with its previous pass.
"""

from __future__ import annotations

import logging
import os
import resource
import socket
import threading
from collections.abc import Callable, Sequence
from typing import Protocol, get_args

from extractor.cgroups.counters import account
from extractor.cgroups.counters import plan as plan_dirs
from extractor.cgroups.layout import CgroupFsError, Layout, detect, namespace_base
from extractor.contract import Container, Fingerprint, Pod, Runtime, Snapshot, Usage
from extractor.discover import Discoverer, Discovery, FoundContainer
from extractor.exitwatch import ExitWatcher, PassedContainer, PassedPod
from extractor.hostpaths import HostPaths
from extractor.pidwatch import PidWatch, usable_for
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


def default_keep_open() -> int:
    """Half the soft descriptor limit: room for kept files without starving the rest."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(soft // 2, 0) if soft != resource.RLIM_INFINITY else 65536


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
        self.hz = clock_ticks()
        self.errors: list[str] = []
        bases: dict[str, str] = {}
        for key in self.layout.hierarchies():
            try:
                bases[key] = namespace_base(self.layout, key, paths.proc_root)
            except CgroupFsError as e:
                bases[key] = "/"
                self.errors.append(str(e))
        budget = default_keep_open() if keep_open is None else keep_open
        # Half the budget for counter files; a quarter each for pidfds and the cgroup
        # files the discoverer keeps open for the processes those pidfds watch.
        self.kept = KeptFiles(budget // 2)
        watched = budget // 4
        self.watch = PidWatch(watched) if watched and usable_for(paths.proc_root) else None
        self.discoverer = Discoverer(paths.proc_root, self.layout, bases, self.watch)
        self._plans: dict[int, tuple[dict[str, str], dict[str, str], str]] = {}
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

    def account(self, paths: dict[str, str]) -> tuple[Usage | None, list[str]]:
        """Usage of the cgroup whose path in each hierarchy is given."""
        if not paths:
            return None, []
        plan = self._plans.get(id(paths))
        if plan is None or plan[0] is not paths:
            plan = self._plan(paths)
        _, dirs, cgroup = plan
        return account(self.layout, dirs, cgroup, self.kept.read, self.hz)

    def _plan(self, paths: dict[str, str]) -> tuple[dict[str, str], dict[str, str], str]:
        """Where a cgroup's files are, worked out once per ``paths`` dict: discovery hands
        the same dict for a container on every pass, so a warm pass skips this."""
        if len(self._plans) > 65536:
            self._plans.clear()
        dirs, cgroup = plan_dirs(self.layout, paths)
        # The dict itself is kept in the entry, so its id cannot be reused while cached.
        entry = (paths, dirs, cgroup)
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
        snapshot = Snapshot(
            node=node_name(),
            taken_at=moment.wall,
            taken_boottime=moment.boot,
            boot_id=self.boot_id,
            cgroup_version=self.layout.version,
            errors=[*self.errors, *found.errors],
        )
        pods: dict[str, Pod] = {}
        pod_paths: dict[str, dict[str, str]] = {}
        for cid, entry in sorted(found.containers.items()):
            container = self._container(cid, entry, identify, fingerprint, moment)
            snapshot.containers.append(container)
            uid = container.pod_uid
            if uid is None:
                continue
            pod = pods.get(uid)
            if pod is None:
                pods[uid] = pod = Pod(uid=uid, qos=container.qos)
            pod.container_ids.append(cid)
            if container.namespace and not pod.namespace:
                pod.namespace, pod.name = container.namespace, container.pod_name
            if entry.ref.pod_paths and uid not in pod_paths:
                pod_paths[uid] = entry.ref.pod_paths
        for uid, pod in pods.items():
            if uid in pod_paths:
                pod.usage, pod.errors = self.account(pod_paths[uid])
            else:
                pod.errors.append("no pod cgroup above its containers' cgroups")
            snapshot.pods.append(pod)
        if self.exits is not None:
            self._exited(snapshot, pods, pod_paths, found)
        self.kept.end_pass()
        return snapshot

    def _exited(
        self,
        snapshot: Snapshot,
        pods: dict[str, Pod],
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
            for cid in pod.container_ids:
                c, entry = by_id[cid], found.containers[cid]
                known[cid] = PassedContainer(
                    paths=entry.ref.paths,
                    name=c.name,
                    sandbox=c.sandbox,
                    started_boottime=c.started_boottime,
                )
            passed[uid] = PassedPod(paths, pod.namespace, pod.name, known)
        try:
            collected = self.exits.collect(passed, pods.keys())
        except Exception as e:  # the watcher must never cost a pass
            snapshot.errors.append(f"exit watcher: {type(e).__name__}: {e}")
            return
        snapshot.exited_pods = collected.pods
        snapshot.exited_containers = collected.containers
        snapshot.errors.extend(collected.errors)
        for cid, boot in collected.filled.items():
            filled = by_id.get(cid)
            if filled is not None:
                filled.filled_boottime = boot

    def _container(
        self,
        cid: str,
        entry: FoundContainer,
        identify: Identify | None,
        fingerprint: FingerprintFn | None,
        now: Moment,
    ) -> Container:
        """The container's fields, gathered first and validated once (a pass builds 250
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
        first = min(entry.stats, key=lambda s: s.start_ticks)
        started = start_boottime(first, self.hz)
        fields["started_boottime"] = started
        fields["started_at"] = now.wall_of(started)
        fields["runtime_seconds"] = max(now.boot - started, 0.0)
        if not sandbox:
            fields["usage"], usage_errors = self.account(entry.ref.paths)
            errors.extend(usage_errors)
            if fingerprint is not None:
                try:
                    fields["fingerprint"] = fingerprint(cid, entry.pids, entry.stats)
                except Exception as e:  # a detector bug costs this container its fingerprint
                    fields["fingerprint"] = Fingerprint(error=f"fingerprint failed: {e}")
        return Container.model_validate(fields)

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
        if self.watch is not None:
            self.watch.close()


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
