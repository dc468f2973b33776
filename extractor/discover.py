"""One walk over every process: which containers exist, their cgroups and their pids.

A process is identified by its ``/proc/<pid>/cgroup`` path alone; processes sharing a
cgroup file share one parse. What a pass learns about a process is kept for its lifetime
when a pidfd can be held for it (``pidwatch``): then later passes only list /proc, ask
one ``poll`` which known processes exited and read the files of new processes only;
every ``refresh_every`` passes the cgroup file of each known process is read again
(through the descriptor kept open since it was learned), to catch the rare process moved
to another cgroup.
Without a pidfd, a process's cgroup file is read again after its ``stat`` and must be
unchanged, so a PID reused in between is not attributed to the wrong container.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from functools import cached_property

from extractor.cgroups.layout import Layout, path_in, resolve
from extractor.cgroups.paths import CgroupIdentity, parse_cgroup_path
from extractor.pidwatch import PidWatch
from hostfs import CHUNK, GONE, ProcReadError, ProcStat, list_pids, parse_stat, read_fd, read_small


@dataclass
class ContainerRef:
    """A container as its processes' cgroup files describe it."""

    identity: CgroupIdentity
    paths: dict[str, str]
    """hierarchy key → host-absolute cgroup path of the container (its scope, not a child)."""
    pod_paths: dict[str, str]
    """hierarchy key → host-absolute cgroup path of the pod, where the layout nests them."""
    errors: list[str] = field(default_factory=list)


@dataclass
class FoundContainer:
    ref: ContainerRef
    stats: list[ProcStat] = field(default_factory=list)

    @cached_property
    def pids(self) -> list[int]:
        """Sorted, worked out once (a pass asks for them more than once)."""
        return sorted(s.pid for s in self.stats)


@dataclass
class Discovery:
    containers: dict[str, FoundContainer]
    errors: list[str]


def container_dir(path: str, container_id: str) -> str | None:
    """The path up to the innermost component naming the container (crun's ``/container``
    child and exec sub-cgroups fold into the container)."""
    parts = path.split("/")
    for i in range(len(parts) - 1, -1, -1):
        if container_id in parts[i]:
            return "/".join(parts[: i + 1]) or "/"
    return None


def pod_dir(container_path: str, pod_uid: str) -> str | None:
    """The nearest ancestor that is the pod's own cgroup, if the layout nests one."""
    parts = container_path.split("/")
    for i in range(len(parts) - 1, 0, -1):
        prefix = "/".join(parts[:i])
        found = parse_cgroup_path(prefix)
        if found.container_id is None and found.pod_uid == pod_uid:
            return prefix
    return None


@dataclass(slots=True)
class _Known:
    """What one read of a process told; ``stat`` only for container processes.

    ``fd`` keeps the process's /proc/<pid>/cgroup open while a pidfd watches it: a
    refresh then costs one ``pread`` instead of open/read/close, and the descriptor stays
    bound to that very process (a reused PID reads as ESRCH, not as someone else).
    """

    data: bytes
    ref: ContainerRef | None
    stat: ProcStat | None
    fd: int | None = None


class Discoverer:
    """Finds containers on each call to :meth:`run`, remembering what stays valid."""

    def __init__(
        self,
        proc_root: str,
        layout: Layout,
        bases: dict[str, str],
        watch: PidWatch | None = None,
        refresh_every: int = 6,
    ) -> None:
        self.proc_root = proc_root
        self.layout = layout
        self.bases = bases
        self.watch = watch
        self.refresh_every = refresh_every
        self._passes = 0
        self.listed = 0
        """Processes the last run found in /proc, container processes or not."""
        self._known: dict[int, _Known] = {}
        self._refs: dict[bytes, tuple[bytes, ContainerRef | None]] = {}

    def _ref(self, data: bytes) -> tuple[bytes, ContainerRef | None]:
        """The container a whole /proc/<pid>/cgroup file names, one parse per distinct
        file; with the first copy of those bytes, which every process of the container
        then shares instead of keeping its own."""
        known = self._refs.get(data)
        if known is not None:
            return known
        if len(self._refs) > 65536:
            self._refs.clear()
        known = self._refs[data] = (data, self._identify(data.decode("utf-8", "replace")))
        return known

    def _identify(self, text: str) -> ContainerRef | None:
        keys = self.layout.hierarchies()
        primary = path_in(self.layout, keys[0], text)
        if primary is None:
            return None
        identity = parse_cgroup_path(resolve(self.bases.get(keys[0], "/"), primary))
        cid = identity.container_id
        if identity.runtime is None or cid is None:
            return None
        ref = ContainerRef(identity=identity, paths={}, pod_paths={})
        for key in keys:
            raw = path_in(self.layout, key, text)
            base = self.bases.get(key, "/")
            path = None if raw is None else container_dir(resolve(base, raw), cid)
            path = None if path is None else sys.intern(path)  # one string, all hierarchies
            if path is None:
                ref.errors.append(f"{key or 'unified'}: process is not in the container's cgroup")
                continue
            ref.paths[key] = path
            pod = pod_dir(path, identity.pod_uid) if identity.pod_uid else None
            if pod is not None:
                ref.pod_paths[key] = sys.intern(pod)
        return ref

    def _learn(self, pid: int) -> _Known | None:
        """Read one process; None when it is gone. Raises OSError/ProcReadError otherwise."""
        cgroup = f"{self.proc_root}/{pid}/cgroup"
        watch = self.watch
        tracked = watch is not None and watch.track(pid)
        fd = None
        try:
            if tracked:
                fd = os.open(cgroup, _READ_FLAGS)
                data = read_fd(fd)
            else:
                data = read_small(cgroup)
            data, ref = self._ref(data)
            stat = None
            if ref is not None:
                stat = parse_stat(pid, read_small(f"{self.proc_root}/{pid}/stat"))
        except (OSError, ProcReadError) as e:
            if fd is not None:
                os.close(fd)
            if watch is not None:
                watch.forget(pid)
            if isinstance(e, OSError) and e.errno in GONE:
                return None
            raise
        if watch is not None and tracked:
            if not watch.alive(pid):
                assert fd is not None
                os.close(fd)
                watch.forget(pid)
                return None
            known = _Known(data, ref, stat, fd)
            self._drop(pid)
            self._known[pid] = known
            return known
        if stat is not None and _read_or_none(cgroup) != data[:CHUNK]:
            return None
        return _Known(data, ref, stat)

    def _unmoved(self, pid: int, entry: _Known) -> bool:
        """Whether a known process is still in the cgroups it was first seen in."""
        if entry.fd is not None:
            try:
                data: bytes | None = os.pread(entry.fd, CHUNK, 0)
            except OSError:  # ESRCH: the process it was opened for is gone
                data = None
        else:
            data = _read_or_none(f"{self.proc_root}/{pid}/cgroup")
        if data == entry.data[:CHUNK]:
            return True
        self._drop(pid)
        return False

    def _drop(self, pid: int) -> None:
        """Forget a known process, closing its kept cgroup file."""
        entry = self._known.pop(pid, None)
        if entry is not None and entry.fd is not None:
            os.close(entry.fd)

    def shrink(self, processes: int) -> None:
        """Watch at most ``processes`` processes: forget the others (they are read again
        by path next pass), closing their pidfds and kept cgroup files."""
        excess = len(self._known) - processes
        for pid in list(self._known)[: max(excess, 0)]:
            self._drop(pid)
            if self.watch is not None:
                self.watch.forget(pid)

    def close(self) -> None:
        """Close every kept cgroup file; the discoverer forgets all processes."""
        for pid in list(self._known):
            self._drop(pid)

    def run(self) -> Discovery:
        found: dict[str, FoundContainer] = {}
        errors: list[str] = []
        unreadable = 0
        known = self._known
        if self.watch is not None:
            for pid in self.watch.exited():
                self._drop(pid)
        refresh = self._passes % self.refresh_every == 0
        self._passes += 1
        pids = list_pids(self.proc_root)
        self.listed = len(pids)
        for pid in pids:
            entry = known.get(pid)
            if entry is not None and refresh and not self._unmoved(pid, entry):
                entry = None
            if entry is None:
                try:
                    entry = self._learn(pid)
                except OSError as e:
                    unreadable += 1
                    if unreadable <= 5:
                        errors.append(f"pid {pid}: {e.strerror or e}")
                    continue
                except ProcReadError as e:
                    errors.append(str(e))
                    continue
                if entry is None:
                    continue
            ref, stat = entry.ref, entry.stat
            if ref is None or stat is None:
                continue
            cid = ref.identity.container_id
            assert cid is not None
            container = found.get(cid)
            if container is None:
                found[cid] = container = FoundContainer(ref=ref)
            container.stats.append(stat)
        if unreadable > 5:
            errors.append(f"{unreadable} processes could not be read in total")
        return Discovery(containers=found, errors=errors)


def _read_or_none(path: str) -> bytes | None:
    """The file's first 64 KiB, or None; flat because a refresh pass calls it for every
    known process. A /proc/<pid>/cgroup is far smaller; were one longer, its prefix
    would differ from the whole first read and the process would simply be re-read."""
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError:
        return None
    try:
        return os.pread(fd, CHUNK, 0)
    except OSError:
        return None
    finally:
        os.close(fd)


_READ_FLAGS = os.O_RDONLY | os.O_CLOEXEC
