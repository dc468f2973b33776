"""Counters of one cgroup → ``model.Usage``, in the kernel's own units made uniform.

Every value is converted to what ``model`` promises (nanoseconds, bytes, counts), with
the same formulas cAdvisor and the kubelet use, so numbers agree with ``kubectl top``:

* v2 ``cpu.stat`` is in µs (×1000); v1 ``cpuacct.usage`` and ``cpu.stat``
  ``throttled_time`` are ns; v1 ``cpuacct.stat`` is in USER_HZ ticks, so the exact
  user/system ns (``cpuacct.usage_all``, else ``usage_user``/``usage_sys``) are preferred
  when the kernel has them;
* working set = usage − inactive_file, clamped at 0; "no limit" (``max`` on v2, ≈2^63
  on v1) becomes ``None``;
* the CFS quota and period stay µs, as the kernel and cAdvisor's spec give them (no
  quota, ``-1`` on v1 and ``max`` on v2, becomes ``None``); pressure stall totals are µs
  on both (×1000); OOM kills, block I/O bytes and operations are the kernel's counts.

What files a reading takes is ``files``' job (``gather``), the details beyond CPU and
memory usage are ``details``'; ``parse`` puts a cgroup's files (or its fresh files and
details read earlier) together into one ``Usage``.

:func:`plan` and :func:`account` are what every reader of a cgroup goes through (a pass
and the exit watcher alike), so counters of one cgroup always come from the same
hierarchies: v2 on a pure v2 node, the v1 controllers on v1 and hybrid nodes (plus the
unified directory's pressure files on hybrid ones). Mixing them would make deltas
meaningless.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from extractor.cgroups.details import Details, details, details_v1, details_v2
from extractor.cgroups.files import (
    Files,
    Read,
    Values,
    field_of,
    gather_v1,
    gather_v2,
    keyed,
    num,
)
from extractor.cgroups.layout import UNIFIED, Layout
from extractor.contract import Usage

_validate: Callable[[dict[str, object]], Usage] = Usage.__pydantic_validator__.validate_python
"""Usage with its Cpu and Memory in one validation: cheaper than a constructor per part."""


def plan(layout: Layout, paths: Mapping[str, str]) -> tuple[dict[str, str], str]:
    """(hierarchy key → cgroupfs directory, the cgroup path the Usage names) of a cgroup
    whose path in each hierarchy is ``paths``."""
    dirs = {k: d for k, p in paths.items() if (d := layout.directory(k, p)) is not None}
    if layout.version == "v2":
        return dirs, paths[UNIFIED]
    cgroup = paths.get("cpuacct") or next(iter(paths.values()))
    if layout.unified is not None and UNIFIED not in dirs:  # hybrid: pressure lives there
        unified = layout.directory(UNIFIED, cgroup)
        if unified is not None:
            dirs[UNIFIED] = unified
    return dirs, cgroup


def account(
    layout: Layout, dirs: Mapping[str, str], cgroup: str, read: Read, hz: int | None
) -> tuple[Usage, list[str]]:
    """One cgroup's Usage from the hierarchies this layout's counters live in."""
    errors: list[str] = []
    files = gather(layout, dirs, read, errors)
    return parse(layout, files, dirs, cgroup, hz, errors), errors


def gather(layout: Layout, dirs: Mapping[str, str], read: Read, errors: list[str]) -> Files:
    """The files a reading of this cgroup takes, read through ``read``."""
    if layout.version == "v2":
        return gather_v2(dirs[UNIFIED], read, errors)
    return gather_v1(dirs, read, errors)


def parse(
    layout: Layout,
    files: Files,
    dirs: Mapping[str, str],
    cgroup: str,
    hz: int | None,
    errors: list[str],
    known: Details | None = None,
) -> Usage:
    """The Usage the gathered ``files`` of this cgroup say; the details from ``known``
    when given (read earlier), else from ``files``."""
    if known is None:
        known = details(layout, files, dirs, hz)
    if known.errors:
        errors.extend(known.errors)
    if layout.version == "v2":
        return parse_v2(files, dirs[UNIFIED], cgroup, errors, known)
    return parse_v1(files, dirs, cgroup, hz, errors, known)


def account_v2(directory: str, read: Read, cgroup: str) -> tuple[Usage, list[str]]:
    """One v2 cgroup (``gather_v2`` and ``parse_v2``)."""
    errors: list[str] = []
    files = gather_v2(directory, read, errors)
    return parse_v2(
        files, directory, cgroup, errors, _with_errors(details_v2(files, directory), errors)
    ), errors


def account_v1(
    directories: Mapping[str, str], read: Read, cgroup: str, hz: int | None = None
) -> tuple[Usage, list[str]]:
    """One container or pod on v1: ``directories`` maps controller → its cgroup dir."""
    errors: list[str] = []
    files = gather_v1(directories, read, errors)
    known = _with_errors(details_v1(files, directories, hz), errors)
    return parse_v1(files, directories, cgroup, hz, errors, known), errors


def _with_errors(known: Details, errors: list[str]) -> Details:
    errors.extend(known.errors)
    return known


def _working_set(usage: int | None, inactive_file: int | None) -> int | None:
    if usage is None:
        return None
    return max(usage - (inactive_file or 0), 0)


def parse_v2(files: Files, directory: str, cgroup: str, errors: list[str], known: Details) -> Usage:
    """One v2 cgroup's ``every_pass`` files and its ``known`` details → Usage."""
    p = Values(files, errors, {UNIFIED: directory}, True)
    cpu: dict[str, int | None] | None = None
    stat = keyed(files.get("cpu.stat"))
    usage_ns = num(stat, b"usage_usec", 1000)
    if usage_ns is not None:
        cpu = {
            "usage_ns": usage_ns,
            "user_ns": num(stat, b"user_usec", 1000),
            "system_ns": num(stat, b"system_usec", 1000),
            "throttled_ns": num(stat, b"throttled_usec", 1000),
            "periods": num(stat, b"nr_periods"),
            "throttled_periods": num(stat, b"nr_throttled"),
            "quota_us": known.quota_us,
            "period_us": known.period_us,
        }
    memory = _memory(p.integer("memory.current"), files, b"inactive_file", known)
    return _usage(cgroup, cpu, memory, known)


def _memory(
    current: int | None, files: Files, inactive_key: bytes, known: Details
) -> dict[str, int | None] | None:
    """Usage and working set (usage − the ``memory.stat`` key of inactive file pages; v1's
    hierarchical ``total_`` one), with the known details; None without the controller."""
    if current is None:
        return None
    mstat = files.get("memory.stat")
    return {
        "current_bytes": current,
        "peak_bytes": known.peak_bytes,
        "working_set_bytes": _working_set(
            current, None if mstat is None else field_of(mstat, inactive_key)
        ),
        "limit_bytes": known.limit_bytes,
        "rss_bytes": known.rss_bytes,
        "cache_bytes": known.cache_bytes,
        "oom_kills": known.oom_kills,
    }


def _usage(
    cgroup: str,
    cpu: dict[str, int | None] | None,
    memory: dict[str, int | None] | None,
    known: Details,
) -> Usage:
    """One validation for all of it (the details' parts are models already)."""
    return _validate(
        {
            "cgroup": cgroup,
            "cpu": cpu,
            "memory": memory,
            "pids": known.pids,
            "pressure": known.pressure,
            "block_io": known.block_io,
            "details_at": known.read_at,
        }
    )


def parse_v1(
    files: Files,
    directories: Mapping[str, str],
    cgroup: str,
    hz: int | None,
    errors: list[str],
    known: Details,
) -> Usage:
    """One v1 (or hybrid) cgroup's ``every_pass`` files and ``known`` details → Usage."""
    p = Values(files, errors, directories, False)
    cpu: dict[str, int | None] | None = None
    usage = p.integer("cpuacct.usage")
    if usage is not None:
        cpu = {
            "usage_ns": usage,
            "user_ns": known.user_ns,
            "system_ns": known.system_ns,
            "throttled_ns": known.throttled_ns,
            "periods": known.periods,
            "throttled_periods": known.throttled_periods,
            "quota_us": known.quota_us,
            "period_us": known.period_us,
        }
    memory = _memory(p.integer("memory.usage_in_bytes"), files, b"total_inactive_file", known)
    return _usage(cgroup, cpu, memory, known)
