"""Which processes of a container to fingerprint, and how one is read from the host.

A container's PID 1 is often a shell, an init shim (tini, dumb-init, s6) or a launcher
script; the workload is a descendant. Every process may exit between two reads, so all
/proc reads here turn ENOENT/ESRCH into "gone" and the caller skips that process.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import deque
from dataclasses import dataclass

from fingerprints.base import ContainerRoot, ProcessView, Reader, RootError
from fingerprints.reading.evidence import clean_path
from fingerprints.reading.rootfs import Budget, read_capped
from hostfs import ProcReadError, pseudo_filesystem, read_cmdline, read_comm, read_stat

WRAPPERS = frozenset(
    {
        "sh",
        "bash",
        "dash",
        "ash",
        "zsh",
        "ksh",
        "busybox",
        "pause",
        "tini",
        "tini-static",
        "dumb-init",
        "catatonit",
        "s6-svscan",
        "s6-supervise",
        "s6-linux-init",
        "runsvdir",
        "runsv",
        "runit",
        "supervisord",
        "conmon",
        "sleep",
        "tail",
        "su-exec",
        "gosu",
        "tini-init",
    }
)
"""Shells, init shims and supervisors: they start the workload but are not it."""

LAUNCHER_TITLES = frozenset({"npm", "npx", "yarn", "pnpm", "PM2"})
"""First word of the process title (comm) of Node.js package-manager and PM2 launchers:
they run on the same node binary as the app they start, so without this the app, a
deeper process with the same executable, would be dropped as a duplicate."""

MAX_PROCESSES = 4
MAX_TREE = 1024
MAX_ENVIRON = 64 << 10
MAX_MAPS = 4 << 20
MAX_MAPPED_FILES = 512


@dataclass(frozen=True)
class Candidate:
    """A process found in the container, ordered by ``(wrapper, depth, pid)``."""

    pid: int
    comm: str
    start_ticks: int
    depth: int
    wrapper: bool
    exe_id: tuple[int, int] | None


def is_wrapper(comm: str, exe: str | None) -> bool:
    """A process that only starts the workload, by its title or executable name."""
    if comm.split(" ", 1)[0] in LAUNCHER_TITLES:
        return True
    names = {comm}
    if exe:
        names.add(os.path.basename(exe.removesuffix(" (deleted)")))
    return any(n in WRAPPERS or n.startswith("supervisor") for n in names)


def _children(proc_root: str, pid: int) -> list[int]:
    """Children of the main thread (CONFIG_PROC_CHILDREN); [] when gone or unsupported."""
    try:
        with open(f"{proc_root}/{pid}/task/{pid}/children", "rb") as f:
            return [int(p) for p in f.read(1 << 16).split()]
    except (OSError, ValueError):
        return []


class ProcessesDenied(RootError):
    """Every process of the container exists but the kernel refuses its /proc links."""


def _exe_link(proc_root: str, pid: int, denied: list[int]) -> str | None:
    """The exe link, or None for a kernel thread, a zombie or a process gone (ENOENT) and
    for one the kernel refuses (EACCES: ptrace access check), which lands in ``denied``."""
    try:
        return os.readlink(f"{proc_root}/{pid}/exe")
    except OSError as e:
        if e.errno in (errno.EACCES, errno.EPERM):
            denied.append(pid)
        return None


def _exe_id(proc_root: str, pid: int) -> tuple[int, int] | None:
    """(st_dev, st_ino) of the running binary: one binary is fingerprinted once."""
    try:
        st = os.stat(f"{proc_root}/{pid}/exe")
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _depth(pid: int, parent: dict[int, int]) -> int:
    """Ancestors of ``pid`` inside the container (a cycle from pid reuse stops the walk)."""
    seen = {pid}
    while pid in parent and parent[pid] not in seen:
        pid = parent[pid]
        seen.add(pid)
    return len(seen) - 1


def candidates(proc_root: str, pids: list[int], descendants: bool = True) -> list[Candidate]:
    """Every live process of the container and (unless ``descendants`` is off: a host
    process looked at on its own) its descendants, best candidates first.
    Raises ProcessesDenied when there are processes but none may be read: that is a
    missing capability, not an empty container, and must read as one."""
    tree: dict[int, list[int]] = {}
    queue = deque(sorted(set(pids)))
    while queue and len(tree) < MAX_TREE:
        pid = queue.popleft()
        if pid not in tree:
            tree[pid] = _children(proc_root, pid) if descendants else []
            queue.extend(tree[pid])
    parent = {c: p for p, kids in tree.items() for c in kids if c in tree}
    found: list[Candidate] = []
    denied: list[int] = []
    for pid in tree:
        try:
            st = read_stat(proc_root, pid)
        except ProcReadError:
            continue
        if st is None:
            continue
        exe = _exe_link(proc_root, pid, denied)
        if exe is None:
            continue  # kernel thread, zombie, gone, or refused
        found.append(
            Candidate(
                pid=pid,
                comm=st.comm,
                start_ticks=st.start_ticks,
                depth=_depth(pid, parent),
                wrapper=is_wrapper(st.comm, exe),
                exe_id=_exe_id(proc_root, pid),
            )
        )
    if not found and denied:
        raise ProcessesDenied(
            f"/proc/{denied[0]}/exe: permission denied, as for every process of the "
            f"container ({len(denied)}): reading other users' processes needs CAP_SYS_PTRACE"
        )
    found.sort(key=lambda c: (c.wrapper, c.depth, c.pid))
    return found


def choose(
    proc_root: str, pids: list[int], limit: int = MAX_PROCESSES, descendants: bool = True
) -> list[Candidate]:
    """The workload processes: wrappers skipped (unless nothing else runs), one per binary."""
    found = candidates(proc_root, pids, descendants)
    workload = [c for c in found if not c.wrapper] or found[:1]
    chosen: list[Candidate] = []
    seen: set[tuple[int, int]] = set()
    for c in workload:
        if c.exe_id is not None:
            if c.exe_id in seen:
                continue
            seen.add(c.exe_id)
        chosen.append(c)
        if len(chosen) >= limit:
            break
    return chosen


class ExeReader:
    """``read(offset, n)`` over ``/proc/<pid>/exe``: the inode the process runs, even when
    deleted or hidden by a mount. Opened at once (so a later PID reuse cannot swap the
    binary), checked to be a regular file on a real filesystem, every read charged to the
    container's budget."""

    def __init__(self, path: str, budget: Budget) -> None:
        self.path = path
        self.budget = budget
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            raise RootError(f"{path}: {e.strerror}") from e
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise RootError(f"{path}: not a regular file")
        kind = pseudo_filesystem(fd)
        if kind is not None:
            os.close(fd)
            raise RootError(f"{path}: on a kernel pseudo-filesystem ({kind}), not read")
        self._fd: int | None = fd

    def __call__(self, offset: int, n: int) -> bytes:
        if self._fd is None:
            raise RootError(f"{self.path}: already closed")
        return read_capped(self._fd, offset, n, self.budget, self.path)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _strip_root(path: str, root_link: str) -> str:
    """Host-visible path → container path (a chrooted process shows its full host path)."""
    if root_link in ("", "/"):
        return path
    if path == root_link:
        return "/"
    if path.startswith(root_link + "/"):
        return path[len(root_link) :]
    return path


def _read(path: str, limit: int) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(limit)
    except PermissionError as e:
        # environ and the like are 0400 and the process's user's: root without
        # CAP_DAC_READ_SEARCH is refused before any ptrace check
        raise RootError(
            f"{path}: {e.strerror} (another user's /proc files need CAP_DAC_READ_SEARCH)"
        ) from e
    except OSError as e:
        raise RootError(f"{path}: {e.strerror}") from e


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError as e:
        raise RootError(f"{path}: {e.strerror}") from e


def parse_environ(data: bytes) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in data.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep and key:
            env[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    return env


def mapped_files(maps: bytes, root_link: str) -> dict[str, str]:
    """Distinct file paths mapped by the process (6th column of /proc/<pid>/maps), in
    address order, each with the name of its first range in map_files (the maps range
    with leading zeros stripped: ``00400000-0054f000`` is ``400000-54f000`` there)."""
    out: dict[str, str] = {}
    for line in maps.splitlines():
        parts = line.split(None, 5)
        if len(parts) != 6 or not parts[5].startswith(b"/"):
            continue
        path = _strip_root(parts[5].decode("utf-8", "replace"), root_link)
        if path in out:
            continue
        start, sep, end = parts[0].partition(b"-")
        try:
            out[path] = f"{int(start, 16):x}-{int(end, 16):x}" if sep else ""
        except ValueError:
            out[path] = ""
        if len(out) >= MAX_MAPPED_FILES:
            break
    return out


class MappedFiles:
    """Readers over ``/proc/<pid>/map_files/<range>``: the inode a library was mapped
    from, whatever its path now names (deleted, replaced by an upgrade, hidden by a
    mount). Opened on first use only (a process maps hundreds of files and detectors read
    one or two); each open is followed by a start-time check so a reused PID cannot hand
    over another process's file, and a file mapped from a kernel pseudo-filesystem (a
    sysfs attribute a container mapped under a library's name) is never read. Needs
    CAP_SYS_ADMIN, which the DaemonSet does not grant: deployed, the first open is refused
    (EPERM), map_files is not tried again for the process, and callers read the library at
    its path in the confined root (``evidence.library_reader``), which
    tests/extractor/test_least_privilege.py runs under exactly the DaemonSet's
    capabilities. What that path cannot see: a library deleted or replaced on disk after
    it was loaded."""

    def __init__(
        self, proc_root: str, cand: Candidate, ranges: dict[str, str], budget: Budget
    ) -> None:
        self.base = f"{proc_root}/{cand.pid}/map_files"
        self.proc_root = proc_root
        self.cand = cand
        self.budget = budget
        self._ranges = {clean_path(path): name for path, name in ranges.items() if name}
        self._fds: dict[str, int] = {}
        self.refused = False
        """The kernel refused map_files (EPERM: no CAP_SYS_ADMIN, as deployed): not tried
        again for this process; libraries are then read at their paths in the root."""

    def reader(self, path: str) -> Reader | None:
        """A budget-charged Reader over the file mapped at container path ``path``."""
        if path not in self._fds:
            fd = self._open(path)
            if fd is None:
                return None
            self._fds[path] = fd

        def read(offset: int, n: int) -> bytes:
            fd = self._fds.get(path)  # looked up per read: a closed fd number may be reused
            if fd is None:
                raise RootError(f"{self.base}: {path} already closed")
            return read_capped(fd, offset, n, self.budget, path)

        return read

    def _open(self, path: str) -> int | None:
        name = self._ranges.get(path)
        if name is None or self.refused:
            return None
        link = f"{self.base}/{name}"
        try:
            # stat before open: a mapped device node (a container may mmap one it made
            # under a library's name) must never be opened
            before = os.stat(link)
            if not stat.S_ISREG(before.st_mode):
                return None
            fd = os.open(link, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError as e:
            self.refused = e.errno in (errno.EPERM, errno.EACCES)
            return None
        try:
            again = read_stat(self.proc_root, self.cand.pid)
        except ProcReadError:
            again = None
        st = os.fstat(fd)
        if (
            (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino)
            or again is None
            or again.start_ticks != self.cand.start_ticks
            or pseudo_filesystem(fd) is not None
        ):
            os.close(fd)
            return None
        return fd

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


@dataclass
class OpenFiles:
    """What a ProcessView keeps open (its executable and mapped files), closed together."""

    exe: ExeReader
    mapped: MappedFiles

    def close(self) -> None:
        self.exe.close()
        self.mapped.close()


def read_view(
    proc_root: str, cand: Candidate, root: ContainerRoot, budget: Budget
) -> tuple[ProcessView, OpenFiles]:
    """A ProcessView of one candidate (RootError if it exited while being read)."""
    base = f"{proc_root}/{cand.pid}"
    root_link = _readlink(f"{base}/root")
    try:
        comm = read_comm(proc_root, cand.pid)
        argv = read_cmdline(proc_root, cand.pid)
    except ProcReadError as e:
        raise RootError(str(e)) from e
    environ = parse_environ(_read(f"{base}/environ", MAX_ENVIRON))
    ranges = mapped_files(_read(f"{base}/maps", MAX_MAPS), root_link)
    cwd = _strip_root(_readlink(f"{base}/cwd"), root_link)
    exe = _strip_root(_readlink(f"{base}/exe"), root_link)
    reader = ExeReader(f"{base}/exe", budget)
    try:
        again = read_stat(proc_root, cand.pid)
    except ProcReadError:
        again = None
    if comm is None or argv is None or again is None or again.start_ticks != cand.start_ticks:
        reader.close()
        raise RootError(f"process {cand.pid} exited while being read")
    view = ProcessView(
        pid=cand.pid,
        comm=comm,
        argv=argv,
        environ=environ,
        cwd=cwd,
        exe=exe,
        maps=list(ranges),
        root=root,
        read_exe=reader,
    )
    mapped = MappedFiles(proc_root, cand, ranges, budget)
    view.read_mapped = mapped.reader
    return view, OpenFiles(reader, mapped)
