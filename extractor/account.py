"""Counters of one cgroup → ``model.Usage``, in the kernel's own units made uniform.

Every value is converted to what ``model`` promises (nanoseconds, bytes, counts), with
the same formulas cAdvisor and the kubelet use, so numbers agree with ``kubectl top``:

* v2 ``cpu.stat`` is in µs (×1000); v1 ``cpuacct.usage`` and ``cpu.stat``
  ``throttled_time`` are ns; v1 ``cpuacct.stat`` is in USER_HZ ticks, so the exact
  user/system ns (``cpuacct.usage_all``, else ``usage_user``/``usage_sys``) are preferred
  when the kernel has them;
* working set = usage − inactive_file, clamped at 0; "no limit" (``max`` on v2, ≈2^63
  on v1) becomes ``None``.

A missing or unreadable file costs only its own field: it becomes ``None`` plus an entry
in the returned error list, so one vanished cgroup never aborts a pass.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Mapping

from extractor.model import Cpu, Memory, Usage
from extractor.smallread import GONE

Read = Callable[[str], bytes]
"""Reads one small file whole; raises OSError."""

CPU_STAT_V2 = (
    b"usage_usec",
    b"user_usec",
    b"system_usec",
    b"nr_periods",
    b"nr_throttled",
    b"throttled_usec",
)
CPU_STAT_V1 = (b"nr_periods", b"nr_throttled", b"throttled_time")

NO_LIMIT_V1 = 1 << 62
"""v1 reports "unlimited" as LONG_MAX rounded down to a page; anything this big is none."""


class _Files:
    """Reads files of one cgroup directory, turning failures into error strings."""

    def __init__(self, read: Read, errors: list[str]) -> None:
        self.read = read
        self.errors = errors

    def get(self, directory: str, name: str, *, optional: bool = False) -> bytes | None:
        try:
            return self.read(f"{directory}/{name}")
        except OSError as e:
            if optional and e.errno == errno.ENOENT:
                return None
            reason = "cgroup vanished" if e.errno in GONE else (e.strerror or str(e))
            self.errors.append(f"{directory}/{name}: {reason}")
            return None

    def integer(self, directory: str, name: str, *, optional: bool = False) -> int | None:
        data = self.get(directory, name, optional=optional)
        if data is None:
            return None
        try:
            return int(data)
        except ValueError:
            text = data.strip()
            if text != b"max":
                self.errors.append(f"{directory}/{name}: not a number: {text[:40]!r}")
            return None

    def keyed(self, directory: str, name: str, keys: tuple[bytes, ...]) -> dict[bytes, int] | None:
        """The named fields of a ``key value`` file; absent keys are left out."""
        data = self.get(directory, name)
        if data is None:
            return None
        return {key: value for key in keys if (value := field_of(data, key)) is not None}


def field_of(data: bytes, key: bytes) -> int | None:
    """One ``key value`` line's value, found without splitting the whole file (memory.stat
    has dozens of lines and only one is needed)."""
    needle = key + b" "
    if data.startswith(needle):
        start = len(needle)
    else:
        at = data.find(b"\n" + needle)
        if at < 0:
            return None
        start = at + 1 + len(needle)
    end = data.find(b"\n", start)
    try:
        return int(data[start:] if end < 0 else data[start:end])
    except ValueError:
        return None


def _working_set(usage: int | None, inactive_file: int | None) -> int | None:
    if usage is None:
        return None
    return max(usage - (inactive_file or 0), 0)


def _pids(files: _Files, directory: str) -> int | None:
    """``pids.current`` where the controller is on; otherwise the member count."""
    current = files.integer(directory, "pids.current", optional=True)
    if current is not None:
        return current
    procs = files.get(directory, "cgroup.procs")
    return None if procs is None else len(procs.split())


def account_v2(directory: str, read: Read, cgroup: str) -> tuple[Usage, list[str]]:
    """One v2 cgroup: ``cpu.stat`` (µs) and the memory files, if the controller is on."""
    errors: list[str] = []
    files = _Files(read, errors)
    cpu = None
    stat = files.keyed(directory, "cpu.stat", CPU_STAT_V2)
    if stat is not None and b"usage_usec" in stat:
        throttled = stat.get(b"throttled_usec")
        cpu = Cpu(
            usage_ns=stat[b"usage_usec"] * 1000,
            user_ns=_us(stat.get(b"user_usec")),
            system_ns=_us(stat.get(b"system_usec")),
            throttled_ns=_us(throttled),
            periods=stat.get(b"nr_periods"),
            throttled_periods=stat.get(b"nr_throttled"),
        )
    memory = None
    current = files.integer(directory, "memory.current", optional=True)
    if current is not None:
        mstat = files.keyed(directory, "memory.stat", (b"inactive_file",)) or {}
        memory = Memory(
            current_bytes=current,
            peak_bytes=files.integer(directory, "memory.peak", optional=True),
            working_set_bytes=_working_set(current, mstat.get(b"inactive_file")),
            limit_bytes=files.integer(directory, "memory.max", optional=True),
        )
    usage = Usage(cgroup=cgroup, cpu=cpu, memory=memory, pids=_pids(files, directory))
    return usage, errors


def _us(value: int | None) -> int | None:
    return None if value is None else value * 1000


def account_v1(
    directories: Mapping[str, str], read: Read, cgroup: str, hz: int | None = None
) -> tuple[Usage, list[str]]:
    """One container or pod on v1: ``directories`` maps controller → its cgroup dir."""
    errors: list[str] = []
    files = _Files(read, errors)
    cpu = None
    acct = directories.get("cpuacct")
    if acct is not None:
        usage = files.integer(acct, "cpuacct.usage")
        if usage is not None:
            user, system = _user_system_ns(files, acct, hz)
            cpu = Cpu(usage_ns=usage, user_ns=user, system_ns=system)
    sched = directories.get("cpu")
    if cpu is not None and sched is not None:
        stat = files.keyed(sched, "cpu.stat", CPU_STAT_V1)
        if stat is not None:
            cpu.throttled_ns = stat.get(b"throttled_time")
            cpu.periods = stat.get(b"nr_periods")
            cpu.throttled_periods = stat.get(b"nr_throttled")
    memory = None
    mem = directories.get("memory")
    if mem is not None:
        current = files.integer(mem, "memory.usage_in_bytes")
        if current is not None:
            mstat = files.keyed(mem, "memory.stat", (b"total_inactive_file",)) or {}
            limit = files.integer(mem, "memory.limit_in_bytes")
            memory = Memory(
                current_bytes=current,
                peak_bytes=files.integer(mem, "memory.max_usage_in_bytes"),
                working_set_bytes=_working_set(current, mstat.get(b"total_inactive_file")),
                limit_bytes=None if limit is None or limit >= NO_LIMIT_V1 else limit,
            )
    pids_dir = directories.get("pids")
    pids = _pids(files, pids_dir) if pids_dir is not None else None
    return Usage(cgroup=cgroup, cpu=cpu, memory=memory, pids=pids), errors


def _user_system_ns(files: _Files, acct: str, hz: int | None) -> tuple[int | None, int | None]:
    """User and system ns, exact where the kernel has them (Linux ≥ 4.7).

    ``cpuacct.usage_all`` lists per CPU the very values ``usage_user``/``usage_sys`` sum
    (both come from cpuacct_cpuusage_read), so one read replaces two; ``cpuacct.stat``
    in USER_HZ ticks is the fallback for older kernels.
    """
    data = files.get(acct, "cpuacct.usage_all", optional=True)
    if data is not None:
        summed = _sum_per_cpu(data)
        if summed is not None:
            return summed
    user = files.integer(acct, "cpuacct.usage_user", optional=True)
    system = files.integer(acct, "cpuacct.usage_sys", optional=True)
    if user is not None and system is not None:
        return user, system
    return _ticks_to_ns(files.keyed(acct, "cpuacct.stat", (b"user", b"system")), hz)


def _sum_per_cpu(data: bytes) -> tuple[int, int] | None:
    """Column sums of ``cpu user system`` rows; None if the table is not that."""
    lines = data.split(b"\n")
    if lines[0].split() != [b"cpu", b"user", b"system"]:
        return None
    user = system = 0
    try:
        for line in lines[1:]:
            if line:
                _, u, s = line.split()
                user += int(u)
                system += int(s)
    except ValueError:
        return None
    return user, system


def _ticks_to_ns(stat: dict[bytes, int] | None, hz: int | None) -> tuple[int | None, int | None]:
    """cpuacct.stat user/system are USER_HZ ticks: ns = ticks × 1e9 / hz."""
    if stat is None:
        return None, None
    ticks_per_s = hz or os.sysconf("SC_CLK_TCK")
    user, system = stat.get(b"user"), stat.get(b"system")
    return (
        None if user is None else user * 1_000_000_000 // ticks_per_s,
        None if system is None else system * 1_000_000_000 // ticks_per_s,
    )
