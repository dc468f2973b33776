"""The details of one cgroup: what its files other than the ``EVERY_PASS`` ones say.

Peak, pids, limits, CFS quota and period, OOM kills, block I/O and pressure (and on v1
the user/system split and throttling, which v2 gives with its usage): parsed into one
``Details`` each time they are read, so a long-lived reader that re-reads them only
every few passes (``extractor.scanner``) parses them only then, and says when
(``read_at``). Units as ``counters`` describes; OOM kills, bytes and operations are the
kernel's counts, the quota and period its µs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from extractor.cgroups.files import Files, Values, field_of, keyed, num, sum_per_cpu
from extractor.cgroups.layout import UNIFIED, Layout
from extractor.contract import BlockDevice, Pressure

NO_LIMIT_V1 = 1 << 62
"""v1 reports "unlimited" as LONG_MAX rounded down to a page; anything this big is none."""

PSI = (
    ("cpu.pressure", "cpu_some_ns", "cpu_full_ns"),
    ("memory.pressure", "memory_some_ns", "memory_full_ns"),
    ("io.pressure", "io_some_ns", "io_full_ns"),
)


@dataclass(frozen=True, slots=True)
class Details:
    """What the files outside ``EVERY_PASS`` say, parsed once per reading of them (v2's
    user/system split and throttling come with its usage, from ``cpu.stat``), and RSS and
    cache, which ``memory.stat`` holds beside the working set's inactive file pages."""

    user_ns: int | None = None
    system_ns: int | None = None
    throttled_ns: int | None = None
    periods: int | None = None
    throttled_periods: int | None = None
    quota_us: int | None = None
    period_us: int | None = None
    peak_bytes: int | None = None
    limit_bytes: int | None = None
    rss_bytes: int | None = None
    cache_bytes: int | None = None
    oom_kills: int | None = None
    pids: int | None = None
    pressure: Pressure | None = None
    block_io: list[BlockDevice] | None = None
    errors: tuple[str, ...] = ()
    read_at: float | None = None
    """When they were read, if before the rest of the Usage they go into."""


def details(
    layout: Layout,
    files: Files,
    dirs: Mapping[str, str],
    hz: int | None,
    read_at: float | None = None,
) -> Details:
    """The details in ``files`` (which may hold the other files too), read at ``read_at``
    if that is to be said."""
    if layout.version == "v2":
        return details_v2(files, dirs[UNIFIED], read_at)
    return details_v1(files, dirs, hz, read_at)


def details_v2(files: Files, directory: str, read_at: float | None = None) -> Details:
    """``cpu.max``, ``memory.peak``/``max``/``events``, ``pids.current`` (else the
    ``cgroup.procs`` count), ``io.stat`` and the pressure files of one v2 cgroup."""
    errors: list[str] = []
    p = Values(files, errors, {UNIFIED: directory}, True)
    quota, period = _cpu_max(p)
    events = files.get("memory.events")
    pids = p.integer("pids.current")
    if pids is None and "cgroup.procs" in files:
        pids = len(files["cgroup.procs"].split())
    io = files.get("io.stat")
    return Details(
        quota_us=quota,
        period_us=period,
        peak_bytes=p.integer("memory.peak"),
        **_rss_cache(files.get("memory.stat"), b"anon", b"file"),
        limit_bytes=p.integer("memory.max"),
        oom_kills=None if events is None else field_of(events, b"oom_kill"),
        pids=pids,
        pressure=_pressure(p),
        block_io=None if io is None else _io_stat(io),
        errors=tuple(errors),
        read_at=read_at,
    )


def _rss_cache(stat: bytes | None, rss: bytes, cache: bytes) -> dict[str, int | None]:
    """Anonymous memory and page cache from ``memory.stat`` (v2 ``anon``/``file``; v1 the
    hierarchical ``total_rss``/``total_cache``, as cAdvisor reads them)."""
    if stat is None:
        return {"rss_bytes": None, "cache_bytes": None}
    return {"rss_bytes": field_of(stat, rss), "cache_bytes": field_of(stat, cache)}


def _cpu_max(p: Values) -> tuple[int | None, int | None]:
    """v2 ``cpu.max``: ``$QUOTA $PERIOD`` in µs, ``max`` as the quota when there is none."""
    data = p.files.get("cpu.max")
    if data is None:
        return None, None
    quota, _, period = data.partition(b" ")
    try:
        return (None if quota == b"max" else int(quota)), int(period)
    except ValueError:
        p.errors.append(f"{p.where('cpu.max')}: not a quota and period: {data.strip()[:40]!r}")
        return None, None


def _pressure(p: Values) -> Pressure | None:
    """The three PSI files' totals as ns; None without PSI."""
    out: dict[str, int | None] = {}
    get = p.files.get
    for name, some_key, full_key in PSI:
        data = get(name)
        if data is None:
            continue
        stall = _stall(data)
        if stall is None:
            p.errors.append(f"{p.where(name)}: not pressure stall information: {data[:40]!r}")
            continue
        out[some_key], out[full_key] = stall
    return Pressure.model_validate(out) if out else None


def _stall(data: bytes) -> tuple[int, int | None] | None:
    """``some … total=N`` and ``full … total=N`` lines (µs) as ns; the kernel writes
    ``some`` first, and cpu's ``full`` only since Linux 5.13."""
    some, _, full = data.partition(b"\n")
    if not some.startswith(b"some "):
        return None
    try:
        some_ns = int(some.rpartition(b"total=")[2]) * 1000
        if not full.startswith(b"full "):
            return some_ns, None
        return some_ns, int(full.partition(b"\n")[0].rpartition(b"total=")[2]) * 1000
    except ValueError:
        return None


def _io_stat(data: bytes) -> list[BlockDevice]:
    """v2 ``io.stat``: ``MAJ:MIN rbytes=… wbytes=… rios=… wios=… dbytes=… dios=…`` lines."""
    out: list[BlockDevice] = []
    for line in data.splitlines():
        tokens = line.split()
        device = _device(tokens[0]) if tokens else None
        if device is None:
            continue
        values = dict(t.partition(b"=")[::2] for t in tokens[1:])
        try:
            out.append(
                BlockDevice(
                    major=device[0],
                    minor=device[1],
                    read_bytes=int(values.get(b"rbytes", 0)),
                    write_bytes=int(values.get(b"wbytes", 0)),
                    reads=int(values.get(b"rios", 0)),
                    writes=int(values.get(b"wios", 0)),
                )
            )
        except ValueError:
            continue
    return out


def _device(token: bytes) -> tuple[int, int] | None:
    major, sep, minor = token.partition(b":")
    if not sep or not major.isdigit() or not minor.isdigit():
        return None
    return int(major), int(minor)


def details_v1(
    files: Files, directories: Mapping[str, str], hz: int | None, read_at: float | None = None
) -> Details:
    """User/system split, throttling, CFS quota and period, memory limit, peak and OOM
    kills, ``pids.current``, block I/O and (hybrid) pressure of one v1 cgroup."""
    errors: list[str] = []
    p = Values(files, errors, directories, False)
    user, system = _user_system_ns(p, hz)
    stat = keyed(files.get("cpu.stat"))
    quota = p.integer("cpu.cfs_quota_us")
    limit = p.integer("memory.limit_in_bytes")
    oom = files.get("memory.oom_control")
    return Details(
        user_ns=user,
        system_ns=system,
        throttled_ns=num(stat, b"throttled_time"),
        periods=num(stat, b"nr_periods"),
        throttled_periods=num(stat, b"nr_throttled"),
        quota_us=None if quota is None or quota < 0 else quota,
        period_us=p.integer("cpu.cfs_period_us"),
        peak_bytes=p.integer("memory.max_usage_in_bytes"),
        **_rss_cache(files.get("memory.stat"), b"total_rss", b"total_cache"),
        limit_bytes=None if limit is None or limit >= NO_LIMIT_V1 else limit,
        oom_kills=None if oom is None else field_of(oom, b"oom_kill"),
        pids=p.integer("pids.current"),
        pressure=_pressure(p),
        block_io=_blkio(files),
        errors=tuple(errors),
        read_at=read_at,
    )


def _blkio(files: Files) -> list[BlockDevice] | None:
    """Per device read/write bytes and operations from whichever throttle pair was read."""
    data = files.get("blkio.throttle.io_service_bytes_recursive")
    ops = files.get("blkio.throttle.io_serviced_recursive")
    if data is None:
        data = files.get("blkio.throttle.io_service_bytes")
        ops = files.get("blkio.throttle.io_serviced")
        if data is None:
            return None
    devices: dict[tuple[int, int], dict[str, int]] = {}
    _rwstat(data, "read_bytes", "write_bytes", devices)
    if ops is not None:
        _rwstat(ops, "reads", "writes", devices)
    return [BlockDevice(major=k[0], minor=k[1], **v) for k, v in devices.items()]


def _rwstat(
    data: bytes, read_key: str, write_key: str, into: dict[tuple[int, int], dict[str, int]]
) -> None:
    """``MAJ:MIN Read N`` / ``MAJ:MIN Write N`` lines (the Sync, Async, Discard and Total
    lines are other sums of the same I/O). A cgroup that did no I/O has only ``Total 0``."""
    if len(data) < 16:
        return
    for line in data.splitlines():
        tokens = line.split()
        if len(tokens) != 3 or tokens[1] not in (b"Read", b"Write"):
            continue
        device = _device(tokens[0])
        if device is None or not tokens[2].isdigit():
            continue
        entry = into.setdefault(device, {})
        entry[read_key if tokens[1] == b"Read" else write_key] = int(tokens[2])


def _user_system_ns(p: Values, hz: int | None) -> tuple[int | None, int | None]:
    """User and system ns, exact where the kernel has them (see ``gather_v1``)."""
    data = p.files.get("cpuacct.usage_all")
    if data is not None:
        summed = sum_per_cpu(data)
        if summed is not None:
            return summed
    user = p.integer("cpuacct.usage_user")
    system = p.integer("cpuacct.usage_sys")
    if user is not None and system is not None:
        return user, system
    stat = p.files.get("cpuacct.stat")
    if stat is None:
        return None, None
    return _ticks_to_ns(field_of(stat, b"user"), field_of(stat, b"system"), hz)


def _ticks_to_ns(
    user: int | None, system: int | None, hz: int | None
) -> tuple[int | None, int | None]:
    """cpuacct.stat user/system are USER_HZ ticks: ns = ticks × 1e9 / hz."""
    ticks_per_s = hz or os.sysconf("SC_CLK_TCK")
    return (
        None if user is None else user * 1_000_000_000 // ticks_per_s,
        None if system is None else system * 1_000_000_000 // ticks_per_s,
    )
