"""The exit watcher: a pod's and a container's final counters, read the moment they end.

Why: a pass every few seconds sees a pod only while it has processes. What it used after
the last pass, or all of it for a pod that lived between two passes, is in the pod's
cgroup until the kubelet removes that, and then it is gone (docs/cgroups.md,
"Counters that reset or vanish").
cgroup v2 says when a cgroup empties or fills: ``cgroup.events`` turns ``populated`` to 0
or 1 and the kernel raises IN_MODIFY on that file. So one thread watches the cgroup2
hierarchy (the cgroup root on a pure v2 node, its ``unified`` mount on a hybrid one; a
pure v1 node has none, and no watcher) with inotify:

* IN_CREATE on every kubepods and QoS directory (and on the few levels above them that
  could still grow a kubepods root, as ``/kubelet`` does) and on every pod directory, so
  each new pod and container directory is watched as it appears; a directory is a pod's
  or a container's by ``parse_cgroup_path``, the rule the passes use;
* IN_MODIFY on each pod's and each container's ``cgroup.events``.

When a pod's ``populated`` is 0 and it has used CPU, its counters are read at once through
``extractor.cgroups.counters``, from the hierarchies and at the very paths the passes read
for that pod (the v1 controllers on a hybrid node: counters of different hierarchies must
never be mixed), and kept as a tombstone for ``retention_seconds``. Every snapshot in that
time lists it, so a failed or lost fetch loses nothing. Each pass reads the tombstones of
pods whose cgroup is still there once more, so the final reading is the latest one. A pod
whose cgroup fills again (a pod without an infra process restarting its only container)
keeps its tombstone: a pass that finds none of its processes (between the two
containers) still lists its last reading, and the next emptying updates it. A pass that
sees the pod live leaves its tombstone out.

Containers are followed the same way, for their times rather than their CPU (the pod's
cgroup has that exactly): a container's run starts when its cgroup fills and ends when
it empties, which the watcher sees within milliseconds, so containers shorter than a
pass and each run of a crash-looping one are known (``Snapshot.exited_containers``, with
the counters read at the end when the runtime has not removed the cgroup yet). Their
names come from the runtime's state (``namer``), read when they start.

What cannot be saved: a cgroup removed before the watcher read it (the kubelet was
faster, the watch could not be added in time, the event queue overflowed). An overflow
(IN_Q_OVERFLOW) is answered by a rescan, which finds every emptied pod directory still
there; an exit found by a rescan is marked ``exited_late`` and dated to the last moment
the watcher knew it running, never to the rescan. Errors never leave the thread: they are
logged, reported in the next snapshot's errors, and the watcher starts over after a
back-off, keeping its tombstones. Memory is bounded: at most ``max_tombstones`` pod and as
many container tombstones, and ``max_watches`` watches (at most half of
``fs.inotify.max_user_watches``, which the kubelet and others share). With a
``TombstoneFile`` the tombstones also outlive the process (``extractor.tombstones``).

Times are read from ``hostfs.clock`` (wall and boot clock together); retention is
measured on the boot clock, so a wall-clock step neither keeps nor drops a tombstone.
``started_at`` of a pod is when the watcher saw its directory created (IN_CREATE): never
before its creation, which matters to the meter, which bills a pod it never saw in full
only if it started after the previous pass. The directory's ctime would not do there:
the kernel stamps it with a clock that lags by up to a tick. A directory first met in a
rescan (at start, after an overflow) has only its ctime, which kernfs sets when the inode
is first looked up, not at mkdir: it may be later than the creation, but for a directory
an earlier watcher already met it is that earlier time, so a restarted extractor does not
present an old exited pod as a new one.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

from inotify_simple import INotify, flags  # type: ignore[import-untyped]

from extractor.cgroups.counters import account
from extractor.cgroups.counters import plan as plan_dirs
from extractor.cgroups.files import VANISHED, field_of
from extractor.cgroups.layout import UNIFIED, Layout
from extractor.cgroups.paths import parse_cgroup_path
from extractor.contract import ExitedContainer, Pod, Qos, Usage
from extractor.tombstones import Stored, StoredContainer, StoredPod, TombstoneFile
from hostfs import GONE, Moment, read_small
from hostfs import now as clock_now

log = logging.getLogger(__name__)

RETENTION_SECONDS = 600.0
MAX_TOMBSTONES = 4096
MAX_WATCHES = 16384
OUTER_DEPTH = 3
"""Directories outside kubepods are watched this many levels below the root: enough for
``/kubepods``, ``/kubelet/kubepods`` and ``/kubelet.slice/kubelet-kubepods.slice`` to be
seen appearing, without watching every service's cgroup."""
MAX_ERRORS = 50
BACKOFF_SECONDS = (0.5, 60.0)
HEALTHY_SECONDS = 60.0
"""A session that ran this long before failing starts the back-off over."""
SAVE_DELAY_SECONDS = 0.5
"""Changed tombstones are written at most this often: a burst of exits is one write."""

_DIR_MASK = flags.CREATE | flags.DELETE | flags.ONLYDIR
_EVENTS_MASK = flags.MODIFY

Namer = Callable[[str], "tuple[str | None, bool] | None"]
"""Container id → (its name, whether it is its pod's sandbox), from the runtime's state."""


@dataclass(frozen=True)
class PassedContainer:
    """What a pass knows of a live container: its cgroup paths, name and start."""

    paths: dict[str, str]
    name: str | None = None
    sandbox: bool = False
    started_boottime: float | None = None


@dataclass(frozen=True)
class PassedPod:
    """What a pass knows of a live pod: its cgroup paths (hierarchy key → path), names
    and containers."""

    paths: dict[str, str]
    namespace: str | None = None
    name: str | None = None
    containers: Mapping[str, PassedContainer] = field(default_factory=dict)


@dataclass
class Collected:
    """What one snapshot lists from the watcher."""

    pods: list[Pod]
    containers: list[ExitedContainer]
    errors: list[str]
    filled: dict[str, float] = field(default_factory=dict)
    """Running container id → boot-clock time its cgroup was seen filling."""


@dataclass
class _PodDir:
    """A watched pod directory of the cgroup2 hierarchy."""

    rel: str
    uid: str
    qos: Qos | None
    wd: int
    created: Moment
    populated: bool = False
    seen_running: Moment | None = None
    passed: PassedPod | None = None


@dataclass
class _ContainerDir:
    """A watched container directory below a pod's."""

    rel: str
    cid: str
    pod_uid: str
    wd: int
    populated: bool = False
    started: Moment | None = None
    started_exact: bool = False
    seen_running: Moment | None = None
    name: str | None = None
    sandbox: bool = False
    named: bool = False


@dataclass
class _Tomb:
    """One emptied pod. ``hidden`` once its retention is over while its directory is still
    there: no longer listed, but remembered, so a rescan does not bury it again."""

    pod: Pod
    rel: str
    removed: bool = False
    hidden: bool = False


@dataclass
class _Errors:
    """Messages for the next snapshot, bounded; the rest are only counted."""

    messages: list[str] = field(default_factory=list)
    dropped: int = 0

    def add(self, message: str) -> None:
        log.warning("exit watcher: %s", message)
        if len(self.messages) < MAX_ERRORS:
            self.messages.append(f"exit watcher: {message}")
        else:
            self.dropped += 1

    def drain(self) -> list[str]:
        out = self.messages
        if self.dropped:
            out.append(f"exit watcher: {self.dropped} more errors (see the extractor's log)")
        self.messages, self.dropped = [], 0
        return out


def watch_budget(proc_root: str, wanted: int = MAX_WATCHES) -> int:
    """At most half the per-user inotify watch limit: root's watches are shared."""
    try:
        limit = int(read_small(f"{proc_root}/sys/fs/inotify/max_user_watches"))
    except (OSError, ValueError):
        return wanted
    return max(min(wanted, limit // 2), 1)


class ExitWatcher:
    """Tombstones of pods and containers that emptied, kept current by a thread;
    ``close()`` it when done."""

    def __init__(
        self,
        layout: Layout,
        *,
        hz: int | None = None,
        proc_root: str = "/proc",
        retention_seconds: float = RETENTION_SECONDS,
        max_tombstones: int = MAX_TOMBSTONES,
        max_watches: int | None = None,
        clock: Callable[[], Moment] = clock_now,
        store: TombstoneFile | None = None,
    ) -> None:
        if layout.unified is None:
            raise ValueError("no cgroup2 hierarchy: cgroup.events cannot be watched")
        self.layout = layout
        self.root = layout.unified
        self.hz = hz
        self.retention_seconds = retention_seconds
        self.max_tombstones = max_tombstones
        self.max_watches = max_watches if max_watches is not None else watch_budget(proc_root)
        self.clock = clock
        self.namer: Namer | None = None
        self.sessions = 0
        self._store = store
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._wake = -1
        self._thread: threading.Thread | None = None
        self._ino: INotify | None = None
        self._dirs: dict[int, str] = {}
        self._dir_wds: dict[str, int] = {}
        self._events: dict[int, _PodDir | _ContainerDir] = {}
        self._pods: dict[str, _PodDir] = {}
        self._by_uid: dict[str, _PodDir] = {}
        self._containers: dict[str, _ContainerDir] = {}
        self._tombs: dict[str, _Tomb] = {}
        self._ended: dict[tuple[str, float], StoredContainer] = {}
        self._errors = _Errors()
        self._dirty = False
        self._saved_at = 0.0
        self._rescanning = False
        if store is not None:
            self._restore(store.load())

    def _restore(self, stored: Stored) -> None:
        for p in stored.pods:
            self._tombs[p.pod.uid] = _Tomb(pod=p.pod, rel=p.rel, removed=p.removed, hidden=p.hidden)
        for c in stored.containers:
            self._ended[(c.container.id, c.container.exited_boottime)] = c
        self._expire()

    # -- the pass's side

    def start(self) -> None:
        """Start the thread; OSError or RuntimeError when no descriptor or thread is left."""
        if self._thread is not None:
            raise RuntimeError("ExitWatcher already started")
        self._wake = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self._thread = threading.Thread(target=self._run, name="exit-watcher", daemon=True)
        self._thread.start()

    def wait_ready(self, timeout: float) -> bool:
        """Until the first scan has watched every pod directory there is (or ``timeout``)."""
        return self._ready.wait(timeout)

    @property
    def watches(self) -> int:
        with self._lock:
            return len(self._dirs) + len(self._events)

    def watched(self) -> list[str]:
        """What is watched now, as paths in the hierarchy: directories, and each pod's and
        container's directory once more for its cgroup.events."""
        with self._lock:
            return [*self._dirs.values(), *(w.rel for w in self._events.values())]

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def collect(self, passed: Mapping[str, PassedPod], live: Collection[str]) -> Collected:
        """The exited pods a snapshot lists (``live`` pod uids left out), the ended
        container runs, and the watcher's errors since the last call. ``passed`` is what
        this pass read for its live pods: a tombstone is then read at the same paths and
        carries the same names."""
        with self._lock:
            for uid, info in passed.items():
                pod = self._by_uid.get(uid)
                if pod is not None:
                    pod.passed = info
                for cid, known in info.containers.items():
                    c = self._containers.get(cid)
                    if c is not None:
                        self._learn(c, known)
            self._expire()
            for uid, tomb in list(self._tombs.items()):
                pod = self._pods.get(tomb.rel)
                if uid in live or tomb.removed or tomb.hidden or pod is None:
                    continue
                try:
                    self._check(pod)
                except Exception as e:  # never let a refresh fail the pass
                    self._errors.add(f"{tomb.rel}: cannot re-read: {e}")
            exited = [t.pod for uid, t in self._tombs.items() if uid not in live and not t.hidden]
            ended = [c.container for c in self._ended.values()]
            filled = {
                c.cid: c.started.boot
                for c in self._containers.values()
                if c.populated and c.started_exact and c.started is not None
            }
            errors = self._errors.drain()
            if self._store is not None and self._store.last_error:
                errors.append(f"exit watcher: {self._store.last_error}")
        self._save_if_dirty(force=True)
        return Collected(exited, ended, errors, filled)

    def close(self) -> None:
        self._stop.set()
        if self._wake < 0:
            return
        os.eventfd_write(self._wake, 1)
        if self._thread is not None and self._thread.ident is not None:
            self._thread.join(10.0)
        os.close(self._wake)
        self._wake = -1
        self._save_if_dirty(force=True)

    # -- persistence

    def _save_if_dirty(self, force: bool = False) -> None:
        if self._store is None:
            return
        with self._lock:
            if not self._dirty:
                return
            if not force and time.monotonic() - self._saved_at < SAVE_DELAY_SECONDS:
                return
            stored = Stored(
                pods=[
                    StoredPod(pod=t.pod, rel=t.rel, removed=t.removed, hidden=t.hidden)
                    for t in self._tombs.values()
                ],
                containers=list(self._ended.values()),
            )
            self._dirty = False
            self._saved_at = time.monotonic()
        self._store.save(stored)

    # -- the thread

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                self._session()
            except Exception as e:
                with self._lock:
                    self._errors.add(f"{type(e).__name__}: {e}; watching again after a pause")
            failures = 1 if time.monotonic() - began >= HEALTHY_SECONDS else failures + 1
            first, most = BACKOFF_SECONDS
            self._stop.wait(min(most, first * 2 ** min(failures - 1, 16)))

    def _session(self) -> None:
        """Watch until stopped; raises on any failure (the caller starts over)."""
        self.sessions += 1
        with INotify() as ino:
            self._ino = ino
            try:
                with self._lock:
                    self._rescan()
                self._ready.set()
                poller = select.poll()
                poller.register(ino.fileno(), select.POLLIN)
                poller.register(self._wake, select.POLLIN)
                while not self._stop.is_set():
                    timeout = SAVE_DELAY_SECONDS * 1000 if self._dirty else None
                    poller.poll(timeout)
                    if self._stop.is_set():
                        return
                    events = ino.read(timeout=0)
                    with self._lock:
                        for event in events:
                            self._handle(event.wd, event.mask, event.name)
                    self._save_if_dirty()
            finally:
                with self._lock:
                    self._forget_watches()

    def _forget_watches(self) -> None:
        """After a session: its watch descriptors die with its inotify instance."""
        self._ino = None
        self._dirs.clear()
        self._dir_wds.clear()
        self._events.clear()
        self._pods.clear()
        self._by_uid.clear()
        self._containers.clear()

    def _handle(self, wd: int, mask: int, name: str) -> None:
        if mask & flags.Q_OVERFLOW:
            self._errors.add("inotify event queue overflowed; rescanned the pod cgroups")
            self._rescan()
            return
        watched = self._events.get(wd)
        if watched is not None:
            if mask & flags.IGNORED:
                self._gone(watched.rel)
            elif mask & flags.MODIFY:
                self._refresh(watched)
            return
        parent = self._dirs.get(wd)
        if parent is None:
            return
        if mask & (flags.IGNORED | flags.UNMOUNT):
            self._gone_dir(parent)
            if parent == "/":
                raise RuntimeError(f"the watched hierarchy {self.root} went away")
            return
        if not mask & flags.ISDIR:
            return
        child = _join(parent, name)
        if mask & flags.CREATE:
            self._visit(child, _depth(child), set(), self.clock())
        elif mask & flags.DELETE:
            self._gone_dir(child)
            self._gone(child)

    def _refresh(self, watched: _PodDir | _ContainerDir) -> None:
        if isinstance(watched, _PodDir):
            self._check(watched)
        else:
            self._check_container(watched)

    # -- directories

    def _dir(self, rel: str) -> str:
        found = self.layout.directory(UNIFIED, rel)
        assert found is not None  # the hierarchy is mounted: the watcher exists for it
        return found

    def _unwatch(self, wd: int) -> None:
        """Remove a watch ourselves: rmdir on cgroupfs sends the watched inode no
        IN_IGNORED, and the watch would pin it (and count against the limit) forever."""
        if self._ino is not None:
            with contextlib.suppress(OSError):  # EINVAL: the kernel dropped it already
                self._ino.rm_watch(wd)

    def _gone_dir(self, rel: str) -> None:
        wd = self._dir_wds.pop(rel, None)
        if wd is not None:
            del self._dirs[wd]
            self._unwatch(wd)

    def _add_watch(self, path: str, mask: int) -> int | None:
        """The new watch, or None: the path is gone, or no watch is left to use."""
        assert self._ino is not None
        if len(self._dirs) + len(self._events) >= self.max_watches:
            self._errors.add(f"{self.max_watches} watches in use; not watching {path}")
            return None
        try:
            return int(self._ino.add_watch(path, mask))
        except OSError as e:
            if e.errno in GONE:
                return None
            if e.errno == errno.ENOSPC:  # fs.inotify.max_user_watches reached
                self._errors.add(f"no inotify watch left for {path}")
                return None
            raise

    def _watch_dir(self, rel: str) -> bool:
        """Watch ``rel`` for new and removed subdirectories; False if it cannot be."""
        if rel in self._dir_wds:
            return True
        wd = self._add_watch(self._dir(rel), _DIR_MASK)
        if wd is None:
            return False
        self._dirs[wd] = rel
        self._dir_wds[rel] = wd
        return True

    def _rescan(self) -> None:
        """Walk the hierarchy: watch what is new, check every pod, forget what is gone.
        Exits found here were not seen happening (``exited_late``)."""
        self._rescanning = True
        try:
            seen: set[str] = set()
            self._visit("/", 0, seen)
            if "/" not in self._dir_wds:
                raise RuntimeError(f"cannot watch the hierarchy {self.root}")
            for rel in [r for r in self._containers if r not in seen]:
                self._gone(rel)
            for rel in [r for r in self._pods if r not in seen]:
                self._gone(rel)
            for tomb in self._tombs.values():
                if not tomb.removed and tomb.rel not in seen:
                    tomb.removed = True
                    self._dirty = True
            for rel in [r for r in self._dir_wds if r not in seen]:
                self._gone_dir(rel)
        finally:
            self._rescanning = False

    def _visit(self, rel: str, depth: int, seen: set[str], created: Moment | None = None) -> None:
        """Watch one directory the way its name says (pod, container, kubepods/QoS level,
        other); ``created``: when it was seen being created (else unknown: a rescan)."""
        seen.add(rel)
        identity = parse_cgroup_path(rel)
        if identity.container_id is not None:
            parent = rel.rsplit("/", 1)[0] or "/"
            pod = self._pods.get(parent)
            if pod is not None:
                self._track_container(rel, identity.container_id, pod.uid)
            return
        if identity.pod_uid is not None:
            self._track(rel, identity.pod_uid, identity.qos, created, seen)
            return
        if depth > OUTER_DEPTH and "kubepods" not in rel:
            return
        if not self._watch_dir(rel):
            return
        for name in self._children(rel):
            self._visit(_join(rel, name), depth + 1, seen, created)

    def _children(self, rel: str) -> list[str]:
        try:
            with os.scandir(self._dir(rel)) as entries:
                return [e.name for e in entries if e.is_dir(follow_symlinks=False)]
        except OSError as e:
            if e.errno in GONE:
                return []
            raise

    def _track(
        self, rel: str, uid: str, qos: Qos | None, created: Moment | None, seen: set[str]
    ) -> None:
        known = self._pods.get(rel)
        if known is None:
            known = self._new_pod(rel, uid, qos, created)
            if known is None:
                return
        self._watch_dir(rel)  # its containers appear in it
        for name in self._children(rel):
            self._visit(_join(rel, name), _depth(rel) + 1, seen)
        self._check(known)

    def _new_pod(
        self, rel: str, uid: str, qos: Qos | None, created: Moment | None
    ) -> _PodDir | None:
        path = self._dir(rel)
        if created is None:
            try:
                ctime = os.stat(path).st_ctime  # see the module docstring
            except OSError as e:
                if e.errno in GONE:
                    return None
                raise
            now = self.clock()
            created = Moment(wall=ctime, boot=now.boot - (now.wall - ctime))
        wd = self._add_watch(f"{path}/cgroup.events", _EVENTS_MASK)
        if wd is None:
            return None
        pod = _PodDir(rel=rel, uid=uid, qos=qos, wd=wd, created=created)
        self._pods[rel] = pod
        self._events[wd] = pod
        self._by_uid.setdefault(uid, pod)
        return pod

    def _track_container(self, rel: str, cid: str, pod_uid: str) -> None:
        known = self._containers.get(rel)
        if known is None:
            wd = self._add_watch(f"{self._dir(rel)}/cgroup.events", _EVENTS_MASK)
            if wd is None:
                return
            known = _ContainerDir(rel=rel, cid=cid, pod_uid=pod_uid, wd=wd)
            self._containers[rel] = known
            self._events[wd] = known
        self._check_container(known)

    def _gone(self, rel: str) -> None:
        """A pod or container directory was removed: its tombstone, if any, is final."""
        container = self._containers.pop(rel, None)
        if container is not None:
            del self._events[container.wd]
            self._unwatch(container.wd)
            return
        pod = self._pods.pop(rel, None)
        if pod is None:
            return
        del self._events[pod.wd]
        self._unwatch(pod.wd)
        self._gone_dir(rel)
        if self._by_uid.get(pod.uid) is pod:
            del self._by_uid[pod.uid]
        for child in [r for r in self._containers if r.startswith(rel + "/")]:
            self._gone(child)
        tomb = self._tombs.get(pod.uid)
        if tomb is not None and tomb.rel == rel and not tomb.removed:
            tomb.removed = True
            self._dirty = True

    # -- reading a pod

    def _check(self, pod: _PodDir) -> None:
        """Read ``populated``: a full pod is live, an emptied one that ran gets buried."""
        try:
            events = read_small(f"{self._dir(pod.rel)}/cgroup.events")
        except OSError as e:
            if e.errno not in GONE:
                raise
            if pod.populated and pod.uid not in self._tombs:
                self._errors.add(f"{pod.rel}: removed before its final counters were read")
            self._gone(pod.rel)
            return
        if field_of(events, b"populated"):
            pod.populated = True
            pod.seen_running = self.clock()
            return
        usage, errors = self._read(pod.passed.paths if pod.passed else None, pod.rel)
        cpu = usage.cpu.usage_ns if usage.cpu is not None else None
        if cpu is None:
            if pod.populated and any(VANISHED in e for e in errors):
                self._errors.add(f"{pod.rel}: removed before its final counters were read")
            elif pod.populated:
                self._errors.add(f"{pod.rel}: exited, counters unreadable: {'; '.join(errors)}")
            return
        if cpu == 0 and not pod.populated:
            return  # not started yet
        self._bury(pod, usage, errors)

    def _read(self, paths: dict[str, str] | None, rel: str) -> tuple[Usage, list[str]]:
        """A cgroup's counters where the passes read them (their paths, once known)."""
        if not paths:
            paths = {key: rel for key in self.layout.hierarchies()}
        dirs, cgroup = plan_dirs(self.layout, paths)
        return account(self.layout, dirs, cgroup, read_small, self.hz)

    def _exit_time(
        self, running: bool, seen: Moment | None, fallback: Moment
    ) -> tuple[Moment, bool]:
        """(when it ended, whether that is late): now when the emptying was seen as it
        happened, else the last moment it was known to run."""
        if running and not self._rescanning:
            return self.clock(), False
        return (seen or fallback), True

    def _bury(self, pod: _PodDir, usage: Usage, errors: list[str]) -> None:
        new_exit = pod.populated or pod.uid not in self._tombs
        exited, late = self._exit_time(pod.populated, pod.seen_running, pod.created)
        pod.populated = False
        self._dirty = True
        tomb = self._tombs.get(pod.uid)
        if tomb is not None and tomb.rel == pod.rel:
            tomb.removed = False  # read just now: the directory is there
            update: dict[str, object] = {}
            before = tomb.pod.usage
            assert before is not None and before.cpu is not None and usage.cpu is not None
            if usage.cpu.usage_ns >= before.cpu.usage_ns:
                update.update(usage=usage, errors=errors)
            if new_exit:  # it ran again since it was buried
                tomb.hidden = False
                update.update(exited_at=exited.wall, exited_boottime=exited.boot, exited_late=late)
            if update:
                tomb.pod = tomb.pod.model_copy(update=update)
            return
        passed = pod.passed
        self._tombs[pod.uid] = _Tomb(
            pod=Pod(
                uid=pod.uid,
                namespace=passed.namespace if passed is not None else None,
                name=passed.name if passed is not None else None,
                qos=pod.qos,
                usage=usage,
                started_at=pod.created.wall,
                started_boottime=pod.created.boot,
                exited_at=exited.wall,
                exited_boottime=exited.boot,
                exited_late=late,
                errors=errors,
            ),
            rel=pod.rel,
        )
        while len(self._tombs) > self.max_tombstones:
            oldest = next(iter(self._tombs))
            del self._tombs[oldest]
            self._errors.add(f"more than {self.max_tombstones} exited pods; forgot pod {oldest}")

    # -- reading a container

    def _learn(self, c: _ContainerDir, known: PassedContainer) -> None:
        """What a pass knows of a running container: its name, and its start from its
        first process when the watcher did not see its cgroup fill."""
        if known.name is not None:
            c.name, c.named = known.name, True
        c.sandbox = c.sandbox or known.sandbox
        if not c.started_exact and known.started_boottime is not None:
            now = self.clock()
            c.started = Moment(
                wall=now.wall_of(known.started_boottime), boot=known.started_boottime
            )

    def _check_container(self, c: _ContainerDir) -> None:
        try:
            events = read_small(f"{self._dir(c.rel)}/cgroup.events")
        except OSError as e:
            if e.errno not in GONE:
                raise
            self._gone(c.rel)
            return
        now = self.clock()
        if field_of(events, b"populated"):
            if not c.populated and c.started is None and not self._rescanning:
                c.started, c.started_exact = now, True
            c.populated = True
            c.seen_running = now
            if not c.named:
                self._name(c)
            return
        if not c.populated:
            return  # not started yet, or ended before it was watched
        exited, late = self._exit_time(True, c.seen_running, now)
        c.populated = False
        usage: Usage | None
        usage, _ = self._read(self._container_paths(c), c.rel)
        if usage.cpu is None:
            usage = None
        started = c.started
        self._ended[(c.cid, exited.boot)] = StoredContainer(
            container=ExitedContainer(
                id=c.cid,
                pod_uid=c.pod_uid,
                name=c.name,
                sandbox=c.sandbox,
                started_at=started.wall if started is not None else None,
                started_boottime=started.boot if started is not None else None,
                exited_at=exited.wall,
                exited_boottime=exited.boot,
                exited_late=late,
                usage=usage,
            ),
            rel=c.rel,
        )
        c.started, c.started_exact = None, False  # a refill would be a new run
        self._dirty = True
        while len(self._ended) > self.max_tombstones:
            del self._ended[next(iter(self._ended))]
            self._errors.add(f"more than {self.max_tombstones} ended containers; forgot one")

    def _container_paths(self, c: _ContainerDir) -> dict[str, str] | None:
        pod = self._by_uid.get(c.pod_uid)
        if pod is None or pod.passed is None:
            return None
        known = pod.passed.containers.get(c.cid)
        return known.paths if known is not None else None

    def _name(self, c: _ContainerDir) -> None:
        """Ask the runtime's state once, while the container runs (it is gone after)."""
        namer = self.namer
        if namer is None:
            return
        c.named = True
        try:
            found = namer(c.cid)
        except Exception as e:  # hostile runtime state costs this container its name
            self._errors.add(f"{c.rel}: runtime labels unreadable: {e}")
            return
        if found is not None:
            c.name, sandbox = found
            c.sandbox = c.sandbox or sandbox

    def _expire(self) -> None:
        """Past retention (on the boot clock): forget a tombstone whose directory is
        gone, hide the others; forget ended container runs."""
        cutoff = self.clock().boot - self.retention_seconds
        for uid, tomb in list(self._tombs.items()):
            exited = tomb.pod.exited_boottime
            if exited is None or exited < cutoff:
                if tomb.removed:
                    del self._tombs[uid]
                    self._dirty = True
                elif not tomb.hidden:
                    tomb.hidden = True
                    self._dirty = True
        for key, ended in list(self._ended.items()):
            if ended.container.exited_boottime < cutoff:
                del self._ended[key]
                self._dirty = True


def _join(parent: str, name: str) -> str:
    return f"{parent.rstrip('/')}/{name}"


def _depth(rel: str) -> int:
    return len([p for p in rel.split("/") if p])
