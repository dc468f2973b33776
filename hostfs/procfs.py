"""/proc helpers for a pass over every process of the node.

Any process can exit between two reads and its PID can be reused, so each helper answers
``None`` when the process is gone (ENOENT/ESRCH) and raises :class:`ProcReadError` with a
readable message for anything else (EACCES, garbage); nothing here lets an ``OSError``
escape. Start times are kept in clock ticks (field 22 of ``stat``) so that ``(pid,
start_ticks)`` identifies a process exactly; they count CLOCK_BOOTTIME, and seconds are
derived with ``hostfs.clock`` (not /proc/stat's ``btime``, which is whole seconds).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from hostfs.smallread import GONE, read_small


class ProcReadError(Exception):
    """A /proc file exists but could not be read or understood."""


@dataclass(frozen=True, slots=True)
class ProcStat:
    """The fields of /proc/<pid>/stat a pass needs."""

    pid: int
    comm: str
    start_ticks: int


def clock_ticks() -> int:
    """USER_HZ: the unit of /proc/<pid>/stat times and cgroup v1 cpuacct.stat."""
    return os.sysconf("SC_CLK_TCK")


def list_pids(proc_root: str) -> list[int]:
    """Every process id visible in ``proc_root`` (threads are not listed there)."""
    return [int(name) for name in os.listdir(proc_root) if name.isdigit()]


def _read(path: str, limit: int = 1 << 20) -> bytes | None:
    try:
        return read_small(path, limit)
    except OSError as e:
        if e.errno in GONE:
            return None
        raise ProcReadError(f"{path}: {e.strerror or e}") from None


def parse_stat(pid: int, data: bytes) -> ProcStat:
    """Parse /proc/<pid>/stat; comm may hold spaces and parentheses, so split at the last ')'."""
    open_at = data.find(b"(")
    close_at = data.rfind(b")")
    if open_at < 0 or close_at < open_at:
        raise ProcReadError(f"pid {pid}: malformed stat")
    fields = data[close_at + 2 :].split()
    # fields[0] is field 3 (state), so field 22 (starttime) is fields[19].
    if len(fields) < 20 or not fields[19].isdigit():
        raise ProcReadError(f"pid {pid}: malformed stat")
    comm = data[open_at + 1 : close_at].decode("utf-8", "replace")
    return ProcStat(pid=pid, comm=comm, start_ticks=int(fields[19]))


def read_stat(proc_root: str, pid: int) -> ProcStat | None:
    data = _read(f"{proc_root}/{pid}/stat")
    return None if data is None else parse_stat(pid, data)


def read_cgroup(proc_root: str, pid: int) -> str | None:
    data = _read(f"{proc_root}/{pid}/cgroup")
    return None if data is None else data.decode("utf-8", "replace")


def read_comm(proc_root: str, pid: int) -> str | None:
    data = _read(f"{proc_root}/{pid}/comm")
    return None if data is None else data.decode("utf-8", "replace").rstrip("\n")


def read_cmdline(proc_root: str, pid: int) -> list[str] | None:
    """argv of the process; empty for kernel threads and zombies."""
    data = _read(f"{proc_root}/{pid}/cmdline", limit=1 << 16)
    if data is None:
        return None
    args = data.rstrip(b"\0")
    return [a.decode("utf-8", "replace") for a in args.split(b"\0")] if args else []


def start_boottime(stat: ProcStat, hz: int) -> float:
    """CLOCK_BOOTTIME seconds at which the process started (the kernel truncates to a
    tick, so the true start is within ``1/hz`` after this)."""
    return stat.start_ticks / hz
