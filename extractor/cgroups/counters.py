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

:func:`plan` and :func:`account` are what every reader of a cgroup goes through (a pass
and the exit watcher alike), so counters of one cgroup always come from the same
hierarchies: v2 on a pure v2 node, the v1 controllers on v1 and hybrid nodes. Mixing
them would make deltas meaningless.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Mapping

from extractor.cgroups.layout import UNIFIED, Layout
from extractor.contract import Usage
from hostfs import GONE

Read = Callable[[str], bytes]
"""Reads one small file whole; raises OSError."""

_usage: Callable[[dict[str, object]], Usage] = Usage.model_validate
"""Usage with its Cpu and Memory in one validation: cheaper than three constructors."""

VANISHED = "cgroup vanished"
"""The error text of a file whose cgroup was removed while being read."""

NO_LIMIT_V1 = 1 << 62
"""v1 reports "unlimited" as LONG_MAX rounded down to a page; anything this big is none."""


def _get(read: Read, path: str, errors: list[str], optional: bool = False) -> bytes | None:
    """The file's bytes; None (plus an error, unless ``optional`` and absent) on failure.

    Module-level and flat on purpose: a pass reads eight files per container and per pod,
    so the Python around each ``pread`` is most of a warm pass's cost.
    """
    try:
        return read(path)
    except OSError as e:
        if not (optional and e.errno == errno.ENOENT):
            _failed(path, e, errors)
        return None


def _integer(read: Read, path: str, errors: list[str], optional: bool = False) -> int | None:
    """A one-number file (``max`` is no number and no error either)."""
    try:
        data = read(path)
    except OSError as e:
        if not (optional and e.errno == errno.ENOENT):
            _failed(path, e, errors)
        return None
    try:
        return int(data)
    except ValueError:
        text = data.strip()
        if text != b"max":
            errors.append(f"{path}: not a number: {text[:40]!r}")
        return None


def _failed(path: str, e: OSError, errors: list[str]) -> None:
    reason = VANISHED if e.errno in GONE else (e.strerror or str(e))
    errors.append(f"{path}: {reason}")


def plan(layout: Layout, paths: Mapping[str, str]) -> tuple[dict[str, str], str]:
    """(hierarchy key → cgroupfs directory, the cgroup path the Usage names) of a cgroup
    whose path in each hierarchy is ``paths``."""
    dirs = {k: d for k, p in paths.items() if (d := layout.directory(k, p)) is not None}
    if layout.version == "v2":
        return dirs, paths[UNIFIED]
    return dirs, paths.get("cpuacct") or next(iter(paths.values()))


def account(
    layout: Layout, dirs: Mapping[str, str], cgroup: str, read: Read, hz: int | None
) -> tuple[Usage, list[str]]:
    """One cgroup's Usage from the hierarchies this layout's counters live in."""
    if layout.version == "v2":
        return account_v2(dirs[UNIFIED], read, cgroup)
    return account_v1(dirs, read, cgroup, hz)


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


def _pids(read: Read, base: str, errors: list[str]) -> int | None:
    """``pids.current`` where the controller is on; otherwise the member count."""
    current = _integer(read, base + "pids.current", errors, True)
    if current is not None:
        return current
    procs = _get(read, base + "cgroup.procs", errors)
    return None if procs is None else len(procs.split())


def account_v2(directory: str, read: Read, cgroup: str) -> tuple[Usage, list[str]]:
    """One v2 cgroup: ``cpu.stat`` (µs) and the memory files, if the controller is on."""
    errors: list[str] = []
    base = directory + "/"
    cpu: dict[str, int | None] | None = None
    stat = _get(read, base + "cpu.stat", errors)
    usage_usec = None if stat is None else field_of(stat, b"usage_usec")
    if stat is not None and usage_usec is not None:
        cpu = {
            "usage_ns": usage_usec * 1000,
            "user_ns": _us(field_of(stat, b"user_usec")),
            "system_ns": _us(field_of(stat, b"system_usec")),
            "throttled_ns": _us(field_of(stat, b"throttled_usec")),
            "periods": field_of(stat, b"nr_periods"),
            "throttled_periods": field_of(stat, b"nr_throttled"),
        }
    memory: dict[str, int | None] | None = None
    current = _integer(read, base + "memory.current", errors, True)
    if current is not None:
        mstat = _get(read, base + "memory.stat", errors)
        memory = {
            "current_bytes": current,
            "peak_bytes": _integer(read, base + "memory.peak", errors, True),
            "working_set_bytes": _working_set(
                current, None if mstat is None else field_of(mstat, b"inactive_file")
            ),
            "limit_bytes": _integer(read, base + "memory.max", errors, True),
        }
    pids = _pids(read, base, errors)
    return _usage({"cgroup": cgroup, "cpu": cpu, "memory": memory, "pids": pids}), errors


def _us(value: int | None) -> int | None:
    return None if value is None else value * 1000


def account_v1(
    directories: Mapping[str, str], read: Read, cgroup: str, hz: int | None = None
) -> tuple[Usage, list[str]]:
    """One container or pod on v1: ``directories`` maps controller → its cgroup dir."""
    errors: list[str] = []
    cpu: dict[str, int | None] | None = None
    acct = directories.get("cpuacct")
    if acct is not None:
        usage = _integer(read, acct + "/cpuacct.usage", errors)
        if usage is not None:
            user, system = _user_system_ns(read, acct + "/", hz, errors)
            throttled = periods = throttled_periods = None
            sched = directories.get("cpu")
            stat = None if sched is None else _get(read, sched + "/cpu.stat", errors)
            if stat is not None:
                throttled = field_of(stat, b"throttled_time")
                periods = field_of(stat, b"nr_periods")
                throttled_periods = field_of(stat, b"nr_throttled")
            cpu = {
                "usage_ns": usage,
                "user_ns": user,
                "system_ns": system,
                "throttled_ns": throttled,
                "periods": periods,
                "throttled_periods": throttled_periods,
            }
    memory: dict[str, int | None] | None = None
    mem = directories.get("memory")
    if mem is not None:
        base = mem + "/"
        current = _integer(read, base + "memory.usage_in_bytes", errors)
        if current is not None:
            mstat = _get(read, base + "memory.stat", errors)
            limit = _integer(read, base + "memory.limit_in_bytes", errors)
            memory = {
                "current_bytes": current,
                "peak_bytes": _integer(read, base + "memory.max_usage_in_bytes", errors),
                "working_set_bytes": _working_set(
                    current, None if mstat is None else field_of(mstat, b"total_inactive_file")
                ),
                "limit_bytes": None if limit is None or limit >= NO_LIMIT_V1 else limit,
            }
    pids_dir = directories.get("pids")
    pids = _pids(read, pids_dir + "/", errors) if pids_dir is not None else None
    return _usage({"cgroup": cgroup, "cpu": cpu, "memory": memory, "pids": pids}), errors


def _user_system_ns(
    read: Read, acct: str, hz: int | None, errors: list[str]
) -> tuple[int | None, int | None]:
    """User and system ns, exact where the kernel has them (Linux ≥ 4.7).

    ``cpuacct.usage_all`` lists per CPU the very values ``usage_user``/``usage_sys`` sum
    (both come from cpuacct_cpuusage_read), so one read replaces two; ``cpuacct.stat``
    in USER_HZ ticks is the fallback for older kernels. ``acct`` ends with ``/``.
    """
    data = _get(read, acct + "cpuacct.usage_all", errors, True)
    if data is not None:
        summed = _sum_per_cpu(data)
        if summed is not None:
            return summed
    user = _integer(read, acct + "cpuacct.usage_user", errors, True)
    system = _integer(read, acct + "cpuacct.usage_sys", errors, True)
    if user is not None and system is not None:
        return user, system
    stat = _get(read, acct + "cpuacct.stat", errors)
    if stat is None:
        return None, None
    return _ticks_to_ns(field_of(stat, b"user"), field_of(stat, b"system"), hz)


def _sum_per_cpu(data: bytes) -> tuple[int, int] | None:
    """Column sums of ``cpu user system`` rows; None if the table is not that."""
    tokens = data.split()
    if tokens[:3] != [b"cpu", b"user", b"system"] or len(tokens) % 3:
        return None
    try:
        return sum(map(int, tokens[4::3])), sum(map(int, tokens[5::3]))
    except ValueError:
        return None


def _ticks_to_ns(
    user: int | None, system: int | None, hz: int | None
) -> tuple[int | None, int | None]:
    """cpuacct.stat user/system are USER_HZ ticks: ns = ticks × 1e9 / hz."""
    ticks_per_s = hz or os.sysconf("SC_CLK_TCK")
    return (
        None if user is None else user * 1_000_000_000 // ticks_per_s,
        None if system is None else system * 1_000_000_000 // ticks_per_s,
    )
