"""The JSON fields every document shares: CPU, memory, fingerprint and times.

``runtime-insights extract --format json`` and the exporter's ``/v1/*`` answers write these
fields with the same names and units (README's API tables), so one ``jq`` filter reads
both; they are written here once. Counters arrive as the kernel's integers
(``model.Usage``); people get seconds and bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from extractor.contract.model import BlockDevice, Cpu, Fingerprint, Interface, Memory, Pressure

NS_PER_SECOND = 1e9


def seconds(ns: int | None) -> float | None:
    return None if ns is None else ns / NS_PER_SECOND


def rfc3339(ts: float | None) -> str | None:
    """UTC to the second with ``Z``, as Kubernetes writes times."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def rfc3339_millis(ts: float) -> str:
    """UTC to the millisecond with ``Z``: the form OpenMeter's date-time validator accepts."""
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def cpu_fields(cpu: Cpu | None) -> dict[str, object]:
    """Cumulative CPU of one cgroup in seconds, with CFS throttling, quota and period
    (µs, as the kernel holds them) and the limit they make in cores."""
    quota, period = (cpu.quota_us, cpu.period_us) if cpu else (None, None)
    return {
        "totalSeconds": seconds(cpu.usage_ns) if cpu else None,
        "userSeconds": seconds(cpu.user_ns) if cpu else None,
        "systemSeconds": seconds(cpu.system_ns) if cpu else None,
        "throttledSeconds": seconds(cpu.throttled_ns) if cpu else None,
        "periods": cpu.periods if cpu else None,
        "throttledPeriods": cpu.throttled_periods if cpu else None,
        "quotaMicroseconds": quota,
        "periodMicroseconds": period,
        "limitCores": quota / period if quota is not None and period else None,
    }


def memory_fields(memory: Memory | None) -> dict[str, object]:
    """Memory of one cgroup in bytes, and its OOM kills."""
    return {
        "currentBytes": memory.current_bytes if memory else None,
        "peakBytes": memory.peak_bytes if memory else None,
        "workingSetBytes": memory.working_set_bytes if memory else None,
        "limitBytes": memory.limit_bytes if memory else None,
        "rssBytes": memory.rss_bytes if memory else None,
        "cacheBytes": memory.cache_bytes if memory else None,
        "oomKills": memory.oom_kills if memory else None,
    }


def pressure_fields(pressure: Pressure | None) -> dict[str, object] | None:
    """Pressure stall totals in seconds: ``some`` (a task waited), ``full`` (all did)."""
    if pressure is None:
        return None
    return {
        "cpuSomeSeconds": seconds(pressure.cpu_some_ns),
        "cpuFullSeconds": seconds(pressure.cpu_full_ns),
        "memorySomeSeconds": seconds(pressure.memory_some_ns),
        "memoryFullSeconds": seconds(pressure.memory_full_ns),
        "ioSomeSeconds": seconds(pressure.io_some_ns),
        "ioFullSeconds": seconds(pressure.io_full_ns),
    }


def block_io_fields(
    devices: list[BlockDevice] | None, names: Mapping[str, str]
) -> list[dict[str, object]] | None:
    """Bytes and operations per block device, named by the snapshot's ``block_devices``."""
    if devices is None:
        return None
    return [
        {
            "device": names.get(f"{d.major}:{d.minor}"),
            "major": d.major,
            "minor": d.minor,
            "readBytes": d.read_bytes,
            "writeBytes": d.write_bytes,
            "reads": d.reads,
            "writes": d.writes,
        }
        for d in devices
    ]


def network_fields(interfaces: list[Interface] | None) -> list[dict[str, object]] | None:
    """Counters per interface of a pod's network namespace."""
    if interfaces is None:
        return None
    return [
        {
            "interface": i.name,
            "rxBytes": i.rx_bytes,
            "rxPackets": i.rx_packets,
            "rxErrors": i.rx_errors,
            "rxDropped": i.rx_dropped,
            "txBytes": i.tx_bytes,
            "txPackets": i.tx_packets,
            "txErrors": i.tx_errors,
            "txDropped": i.tx_dropped,
        }
        for i in interfaces
    ]


def fingerprint_fields(fingerprint: Fingerprint | None) -> dict[str, object] | None:
    """insights-runtime-extractor's fields, extras and error; empty values are omitted, as
    that tool omits them."""
    if fingerprint is None:
        return None
    dumped = fingerprint.model_dump(mode="json", exclude_none=True)
    return {k: v for k, v in dumped.items() if v not in ("", [], {})}
