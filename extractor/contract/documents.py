"""The JSON fields every document shares: CPU, memory, fingerprint and times.

``runtime-insights extract --format json`` and the exporter's ``/v1/*`` answers write these
fields with the same names and units (README's API tables), so one ``jq`` filter reads
both; they are written here once. Counters arrive as the kernel's integers
(``model.Usage``); people get seconds and bytes.
"""

from __future__ import annotations

from datetime import UTC, datetime

from extractor.contract.model import Cpu, Fingerprint, Memory

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
    """Cumulative CPU of one cgroup in seconds, with CFS throttling."""
    return {
        "totalSeconds": seconds(cpu.usage_ns) if cpu else None,
        "userSeconds": seconds(cpu.user_ns) if cpu else None,
        "systemSeconds": seconds(cpu.system_ns) if cpu else None,
        "throttledSeconds": seconds(cpu.throttled_ns) if cpu else None,
        "periods": cpu.periods if cpu else None,
        "throttledPeriods": cpu.throttled_periods if cpu else None,
    }


def memory_fields(memory: Memory | None) -> dict[str, object]:
    """Memory of one cgroup in bytes."""
    return {
        "currentBytes": memory.current_bytes if memory else None,
        "peakBytes": memory.peak_bytes if memory else None,
        "workingSetBytes": memory.working_set_bytes if memory else None,
        "limitBytes": memory.limit_bytes if memory else None,
    }


def fingerprint_fields(fingerprint: Fingerprint | None) -> dict[str, object] | None:
    """insights-runtime-extractor's fields, extras and error; empty values are omitted, as
    that tool omits them."""
    if fingerprint is None:
        return None
    dumped = fingerprint.model_dump(mode="json", exclude_none=True)
    return {k: v for k, v in dumped.items() if v not in ("", [], {})}
