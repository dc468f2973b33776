"""The exit watcher: a pod's final counters, read the moment its last process exits.

Why: a pass every few seconds sees a pod only while it has processes. What it used after
the last pass, or all of it for a pod that lived between two passes, is in the pod's
cgroup until the kubelet removes that, and then it is gone (docs/cgroups.md,
"Counters that reset or vanish"). cgroup v2 says when a cgroup empties: ``cgroup.events`` turns to
``populated 0`` and the kernel raises IN_MODIFY on that file. So one thread watches the
cgroup2 hierarchy (the cgroup root on a pure v2 node, its ``unified`` mount on a hybrid
one; a pure v1 node has none, and no watcher) with inotify:

* IN_CREATE on every kubepods and QoS directory (and on the few levels above them that
  could still grow a kubepods root, as ``/kubelet`` does), so each new pod directory is
  watched as it appears; a directory is a pod's by ``parse_cgroup_path``, the rule the
  passes use;
* IN_MODIFY on each pod directory's ``cgroup.events``.

When a pod's ``populated`` is 0 and it has used CPU, its counters are read at once through
``extractor.cgroups.counters``, from the hierarchies and at the very paths the passes read for that
pod (the v1 controllers on a hybrid node: counters of different hierarchies must never be
mixed), and kept as a tombstone for ``retention_seconds``. Every snapshot in that time
lists it, so a failed or lost fetch loses nothing. Each pass reads the tombstones of pods
whose cgroup is still there once more, so the final reading is the latest one; a pod
whose cgroup fills again (a pod without an infra process restarting its only container)
loses its tombstone: it is live again.

What cannot be saved: a pod cgroup removed before the watcher read it (the kubelet was
faster, the watch could not be added in time, the event queue overflowed). An overflow
(IN_Q_OVERFLOW) is answered by a rescan, which finds every emptied pod directory still
there. Errors never leave the thread: they are logged, reported in the next snapshot's
errors, and the watcher starts over after a back-off, keeping its tombstones. Memory is
bounded: at most ``max_tombstones`` tombstones and ``max_watches`` watches (at most half
of ``fs.inotify.max_user_watches``, which the kubelet and others share).

``started_at`` is when the watcher saw the pod directory created (IN_CREATE): never
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

from extractor.cgroups.counters import VANISHED, account, field_of
from extractor.cgroups.counters import plan as plan_dirs
from extractor.cgroups.layout import UNIFIED, Layout
from extractor.cgroups.paths import parse_cgroup_path
from extractor.contract import Pod, Qos, Usage
from hostfs import GONE, read_small

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

_DIR_MASK = flags.CREATE | flags.DELETE | flags.ONLYDIR
_EVENTS_MASK = flags.MODIFY


@dataclass(frozen=True)
class PassedPod:
    """What a pass knows of a live pod: its cgroup paths (hierarchy key → path) and names."""

    paths: dict[str, str]
    namespace: str | None = None
    name: str | None = None


@dataclass
class _PodDir:
    """A watched pod directory of the cgroup2 hierarchy."""

    rel: str
    uid: str
    qos: Qos | None
    wd: int
    created_at: float
    populated: bool = False
    passed: PassedPod | None = None


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
    """Tombstones of pods that emptied, kept current by a thread; ``close()`` it when done."""

    def __init__(
        self,
        layout: Layout,
        *,
        hz: int | None = None,
        proc_root: str = "/proc",
        retention_seconds: float = RETENTION_SECONDS,
        max_tombstones: int = MAX_TOMBSTONES,
        max_watches: int | None = None,
        clock: Callable[[], float] = time.time,
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
        self.sessions = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._wake = -1
        self._thread: threading.Thread | None = None
        self._ino: INotify | None = None
        self._dirs: dict[int, str] = {}
        self._dir_wds: dict[str, int] = {}
        self._events: dict[int, _PodDir] = {}
        self._pods: dict[str, _PodDir] = {}
        self._by_uid: dict[str, _PodDir] = {}
        self._tombs: dict[str, _Tomb] = {}
        self._errors = _Errors()

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
        """What is watched now, as paths in the hierarchy: directories, and each pod's
        directory once more for its cgroup.events."""
        with self._lock:
            return [*self._dirs.values(), *(pod.rel for pod in self._events.values())]

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def collect(
        self, passed: Mapping[str, PassedPod], live: Collection[str]
    ) -> tuple[list[Pod], list[str]]:
        """The exited pods a snapshot lists (``live`` pod uids left out) and the watcher's
        errors since the last call. ``passed`` is what this pass read for its live pods:
        a tombstone is then read at the same paths and carries the same names."""
        with self._lock:
            for uid, info in passed.items():
                pod = self._by_uid.get(uid)
                if pod is not None:
                    pod.passed = info
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
            return exited, self._errors.drain()

    def close(self) -> None:
        self._stop.set()
        if self._wake < 0:
            return
        os.eventfd_write(self._wake, 1)
        if self._thread is not None and self._thread.ident is not None:
            self._thread.join(10.0)
        os.close(self._wake)
        self._wake = -1

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
                    poller.poll()
                    if self._stop.is_set():
                        return
                    events = ino.read(timeout=0)
                    with self._lock:
                        for event in events:
                            self._handle(event.wd, event.mask, event.name)
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

    def _handle(self, wd: int, mask: int, name: str) -> None:
        if mask & flags.Q_OVERFLOW:
            self._errors.add("inotify event queue overflowed; rescanned the pod cgroups")
            self._rescan()
            return
        pod = self._events.get(wd)
        if pod is not None:
            if mask & flags.IGNORED:
                self._gone(pod.rel)
            elif mask & flags.MODIFY:
                self._check(pod)
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

    def _rescan(self) -> None:
        """Walk the hierarchy: watch what is new, check every pod, forget what is gone."""
        seen: set[str] = set()
        self._visit("/", 0, seen)
        if "/" not in self._dir_wds:
            raise RuntimeError(f"cannot watch the hierarchy {self.root}")
        for rel in [r for r in self._pods if r not in seen]:
            self._gone(rel)
        for tomb in self._tombs.values():
            tomb.removed = tomb.removed or tomb.rel not in seen
        for rel in [r for r in self._dir_wds if r not in seen]:
            self._gone_dir(rel)

    def _visit(self, rel: str, depth: int, seen: set[str], created: float | None = None) -> None:
        """Watch one directory the way its name says (pod, kubepods/QoS level, other);
        ``created``: when it was seen being created (else unknown: a rescan)."""
        seen.add(rel)
        identity = parse_cgroup_path(rel)
        if identity.container_id is not None:
            return
        if identity.pod_uid is not None:
            self._track(rel, identity.pod_uid, identity.qos, created)
            return
        if depth > OUTER_DEPTH and "kubepods" not in rel:
            return
        path = self._dir(rel)
        if rel not in self._dir_wds:
            wd = self._add_watch(path, _DIR_MASK)
            if wd is None:
                return
            self._dirs[wd] = rel
            self._dir_wds[rel] = wd
        try:
            with os.scandir(path) as entries:
                children = [e.name for e in entries if e.is_dir(follow_symlinks=False)]
        except OSError as e:
            if e.errno in GONE:
                return
            raise
        for name in children:
            self._visit(_join(rel, name), depth + 1, seen, created)

    def _track(self, rel: str, uid: str, qos: Qos | None, created: float | None) -> None:
        known = self._pods.get(rel)
        if known is not None:
            self._check(known)
            return
        path = self._dir(rel)
        if created is None:
            try:
                created = os.stat(path).st_ctime  # see the module docstring
            except OSError as e:
                if e.errno in GONE:
                    return
                raise
        wd = self._add_watch(f"{path}/cgroup.events", _EVENTS_MASK)
        if wd is None:
            return
        pod = _PodDir(rel=rel, uid=uid, qos=qos, wd=wd, created_at=created)
        self._pods[rel] = pod
        self._events[wd] = pod
        self._by_uid.setdefault(uid, pod)
        self._check(pod)

    def _gone(self, rel: str) -> None:
        """The pod directory was removed: its tombstone, if any, is final."""
        pod = self._pods.pop(rel, None)
        if pod is None:
            return
        del self._events[pod.wd]
        self._unwatch(pod.wd)
        if self._by_uid.get(pod.uid) is pod:
            del self._by_uid[pod.uid]
        tomb = self._tombs.get(pod.uid)
        if tomb is not None and tomb.rel == rel:
            tomb.removed = True

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
            tomb = self._tombs.get(pod.uid)
            if tomb is not None and tomb.rel == pod.rel:
                del self._tombs[pod.uid]
            return
        usage, errors = self._read(pod)
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

    def _read(self, pod: _PodDir) -> tuple[Usage, list[str]]:
        """The pod's counters where the passes read them (their paths, once known)."""
        if pod.passed is not None and pod.passed.paths:
            paths = pod.passed.paths
        else:
            paths = {key: pod.rel for key in self.layout.hierarchies()}
        dirs, cgroup = plan_dirs(self.layout, paths)
        return account(self.layout, dirs, cgroup, read_small, self.hz)

    def _bury(self, pod: _PodDir, usage: Usage, errors: list[str]) -> None:
        tomb = self._tombs.get(pod.uid)
        if tomb is not None and tomb.rel == pod.rel:
            tomb.removed = False  # read just now: the directory is there
            before = tomb.pod.usage
            assert before is not None and before.cpu is not None and usage.cpu is not None
            if usage.cpu.usage_ns >= before.cpu.usage_ns:
                tomb.pod = tomb.pod.model_copy(update={"usage": usage, "errors": errors})
            return
        passed = pod.passed
        self._tombs[pod.uid] = _Tomb(
            pod=Pod(
                uid=pod.uid,
                namespace=passed.namespace if passed is not None else None,
                name=passed.name if passed is not None else None,
                qos=pod.qos,
                usage=usage,
                started_at=pod.created_at,
                exited_at=self.clock(),
                errors=errors,
            ),
            rel=pod.rel,
        )
        while len(self._tombs) > self.max_tombstones:
            oldest = next(iter(self._tombs))
            del self._tombs[oldest]
            self._errors.add(f"more than {self.max_tombstones} exited pods; forgot pod {oldest}")

    def _expire(self) -> None:
        """Past retention: forget a tombstone whose directory is gone, hide the others."""
        cutoff = self.clock() - self.retention_seconds
        for uid, tomb in list(self._tombs.items()):
            if (tomb.pod.exited_at or 0.0) < cutoff:
                if tomb.removed:
                    del self._tombs[uid]
                else:
                    tomb.hidden = True


def _join(parent: str, name: str) -> str:
    return f"{parent.rstrip('/')}/{name}"


def _depth(rel: str) -> int:
    return len([p for p in rel.split("/") if p])
