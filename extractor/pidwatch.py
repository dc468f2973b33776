"""Which known processes have exited, for the price of one ``poll``.

A pidfd refers to one process, not to a PID number: it becomes readable when that
process exits, and stays bound to it even if the number is reused. Holding one per known
process lets a pass skip re-reading the ``/proc/<pid>/cgroup`` of every process it
already knows (container processes do not change cgroups; a periodic full re-read in
``discover`` catches the rare one that is moved) and proves that reads made while the
pidfd was open were of that very process.

Only usable when the proc root belongs to the extractor's own PID namespace (hostPID),
since ``pidfd_open`` takes a PID of the caller's namespace.
"""

from __future__ import annotations

import os
import select
import signal


def usable_for(proc_root: str) -> bool:
    """True when PIDs under ``proc_root`` are PIDs of this process's namespace."""
    try:
        return os.readlink(os.path.join(proc_root, "self")) == str(os.getpid())
    except OSError:
        return False


class PidWatch:
    """pidfds of up to ``capacity`` processes, polled together."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._fd_of: dict[int, int] = {}
        self._pid_of: dict[int, int] = {}
        self._poll = select.poll()

    def __len__(self) -> int:
        return len(self._fd_of)

    def __contains__(self, pid: int) -> bool:
        return pid in self._fd_of

    def track(self, pid: int) -> bool:
        """Hold a pidfd for whoever has ``pid`` now; False if full or the process is gone."""
        if pid in self._fd_of:
            return True
        if len(self._fd_of) >= self.capacity:
            return False
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            return False
        self._fd_of[pid] = fd
        self._pid_of[fd] = pid
        self._poll.register(fd, select.POLLIN)
        return True

    def alive(self, pid: int) -> bool:
        """Whether the tracked process still holds its PID (a zombie still does)."""
        try:
            signal.pidfd_send_signal(self._fd_of[pid], 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # it exists; signalling it is just not ours to do
        return True

    def exited(self) -> list[int]:
        """Tracked processes that exited since the last call; they are forgotten."""
        gone = [self._pid_of[fd] for fd, _ in self._poll.poll(0)]
        for pid in gone:
            self.forget(pid)
        return gone

    def forget(self, pid: int) -> None:
        fd = self._fd_of.pop(pid, None)
        if fd is not None:
            del self._pid_of[fd]
            self._poll.unregister(fd)
            os.close(fd)

    def close(self) -> None:
        for pid in list(self._fd_of):
            self.forget(pid)
