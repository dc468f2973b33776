"""A pod's network counters, from its network namespace's ``/proc/<pid>/net/dev``.

Every container of a pod shares the sandbox's network namespace, so one process of the
pod (its sandbox's, else its oldest) tells the whole pod's traffic. ``/proc/<pid>/net``
shows the namespace of that process to anyone who can see the process: the file is
world-readable and the kernel checks no ptrace access for it, so ``hostPID`` is all it
takes (no capability; ``SYS_PTRACE`` is not used here).

An open ``net/dev`` stays bound to the namespace it was opened in, even after the
process is gone; so a descriptor is kept per process identity (PID and start time) and
closed when that process is no longer the one read. The proc inode number of ``net/dev``
differs between namespaces (each namespace registers its own entry), which tells a pod
on the host's network (``hostNetwork``, whose counters are the node's, not the pod's)
without reading ``/proc/<pid>/ns/net``, which would need ptrace access.

Interfaces are those cAdvisor reports: loopback and the host ends of container links
(``veth``, ``docker``, ``nerdctl`` bridges) are left out.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass

from extractor.contract import Interface
from hostfs import CHUNK, GONE, ProcReadError, read_stat

IGNORED = (b"lo", b"veth", b"docker", b"nerdctl")
"""cAdvisor's ignored interface name prefixes (lib/container/libcontainer/handler.go)."""


@dataclass(frozen=True, slots=True)
class PodNetwork:
    """What one read of a pod's namespace said."""

    interfaces: list[Interface] | None = None
    host_network: bool | None = None
    error: str | None = None


class NetworkReader:
    """Reads pods' ``net/dev`` files through descriptors kept per process."""

    def __init__(self, proc_root: str, capacity: int) -> None:
        self.proc_root = proc_root
        self.capacity = capacity
        self._kept: dict[tuple[int, int], tuple[int, int]] = {}
        """(pid, start ticks) → (descriptor, inode number of that namespace's net/dev)."""
        self._used: set[tuple[int, int]] = set()
        self._asked: set[tuple[int, int]] = set()
        self.wanted = 0
        """Processes the last finished pass read a pod's network through."""
        self.host = _inode(f"{proc_root}/1/net/dev")

    def __len__(self) -> int:
        return len(self._kept)

    def read(self, pid: int, start_ticks: int) -> PodNetwork:
        """The namespace of process ``pid`` (started at ``start_ticks``)."""
        key = (pid, start_ticks)
        self._asked.add(key)
        entry = self._kept.get(key)
        kept = entry is not None
        if entry is None:
            try:
                entry = self._open(pid, start_ticks)
            except OSError as e:
                if e.errno in GONE:
                    return PodNetwork()
                return PodNetwork(error=f"{self.proc_root}/{pid}/net/dev: {e.strerror or e}")
            if entry is None:
                return PodNetwork()  # the process exited (or its PID was reused) meanwhile
            kept = len(self._kept) < self.capacity
            if kept:
                self._kept[key] = entry
        fd, inode = entry
        try:
            if inode == self.host:
                return PodNetwork(host_network=True)
            data = os.pread(fd, CHUNK, 0)
        except OSError as e:
            return PodNetwork(error=f"{self.proc_root}/{pid}/net/dev: {e.strerror or e}")
        finally:
            if kept:
                self._used.add(key)
            else:
                os.close(fd)
        return PodNetwork(interfaces=parse_net_dev(data), host_network=False)

    def _open(self, pid: int, start_ticks: int) -> tuple[int, int] | None:
        """Open ``net/dev`` and make sure it was opened for that very process."""
        fd = os.open(f"{self.proc_root}/{pid}/net/dev", os.O_RDONLY | os.O_CLOEXEC)
        try:
            inode = os.fstat(fd).st_ino
            same = read_stat(self.proc_root, pid)
        except (OSError, ProcReadError):
            os.close(fd)
            raise OSError(errno.ESRCH, "process gone") from None
        if same is None or same.start_ticks != start_ticks:
            os.close(fd)
            return None
        return fd, inode

    def keep(self, pid: int, start_ticks: int) -> None:
        """Keep that process's descriptor through this pass without reading it."""
        self._asked.add((pid, start_ticks))
        if (pid, start_ticks) in self._kept:
            self._used.add((pid, start_ticks))

    def end_pass(self) -> None:
        """Close the descriptors of processes no pod was read through this pass."""
        for key in [k for k in self._kept if k not in self._used]:
            os.close(self._kept.pop(key)[0])
        self._used.clear()
        self.wanted = len(self._asked)
        self._asked.clear()

    def trim(self) -> None:
        """Close descriptors until no more than ``capacity`` are held."""
        for key in list(self._kept)[: max(len(self._kept) - self.capacity, 0)]:
            os.close(self._kept.pop(key)[0])

    def close(self) -> None:
        for fd, _ in self._kept.values():
            os.close(fd)
        self._kept.clear()
        self._used.clear()


def _inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def parse_net_dev(data: bytes) -> list[Interface]:
    """``/proc/net/dev``: two header lines, then ``name: rx×8 tx×8`` per interface."""
    out: list[Interface] = []
    for line in data.split(b"\n")[2:]:
        name, sep, rest = line.partition(b":")
        name = name.strip()
        if not sep or name.startswith(IGNORED):
            continue
        f = rest.split()
        if len(f) < 16:
            continue
        try:
            out.append(
                Interface(
                    name=name.decode("utf-8", "replace"),
                    rx_bytes=int(f[0]),
                    rx_packets=int(f[1]),
                    rx_errors=int(f[2]),
                    rx_dropped=int(f[3]),
                    tx_bytes=int(f[8]),
                    tx_packets=int(f[9]),
                    tx_errors=int(f[10]),
                    tx_dropped=int(f[11]),
                )
            )
        except ValueError:
            continue
    return out
