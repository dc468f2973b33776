"""Closed windows → OpenMeter CloudEvents, one per pod (or per container) per window.

Field names keep what the collectors' meters read (docs/openmeter.md, "What the existing
collectors bill": ``duration_seconds``, ``pod_name``, ``pod_namespace``; the watcher's
``duration`` as a string of whole seconds) and add the kernel's exact usage; README's
"Usage events" lists every field. Values are in seconds, bytes and cores; nothing is
negative and nothing is null (a value that is not known is left out, so a meter never
sums a null).

Event ids are a hash of what the window is (pod, container, series, bounds on the boot
clock and in counter values), so a resend after a timeout or a crash carries the same
id and OpenMeter's (source, id) deduplication drops it.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Any

from exporter.meter.accrual import ContainerWindow, OpenWindow, Reserved
from exporter.meter.billing import Billing, Identity
from extractor.contract import rfc3339_millis

Event = dict[str, Any]
NS = 1e9


@lru_cache(maxsize=4096)
def _when(ts: float) -> str:
    """RFC 3339 to the millisecond; every window of a close shares its bounds."""
    return rfc3339_millis(ts)


def event_id(source: str, event_type: str, parts: tuple[object, ...]) -> str:
    """A UUID-shaped SHA-256 of what the window is: equal inputs, equal ids."""
    text = "\x1f".join(map(repr, (source, event_type, *parts)))
    h = hashlib.sha256(text.encode()).hexdigest()
    # the layout of a version-5 UUID: version nibble 5, variant bits 10
    variant = "89ab"[int(h[16], 16) & 3]
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{variant}{h[17:20]}-{h[20:32]}"


def _reserved(r: Reserved) -> dict[str, float]:
    """Requests and limits × running time: core-seconds, byte-seconds, device-seconds."""
    out = {
        "cpu_request_core_seconds": r.cpu_request_mc_ns / 1e12,
        "cpu_limit_core_seconds": r.cpu_limit_mc_ns / 1e12,
        "memory_request_byte_seconds": r.memory_request_byte_ns / NS,
        "memory_limit_byte_seconds": r.memory_limit_byte_ns / NS,
        "gpu_request_seconds": r.gpu_request_ns / NS,
        "gpu_limit_seconds": r.gpu_limit_ns / NS,
    }
    return {k: v for k, v in out.items() if v}


def _resources(w: OpenWindow, container: str | None) -> dict[str, float | int]:
    """The requests and limits as they are now, in cores and bytes."""
    if w.facts is None:
        return {}
    r = w.facts.resources if container is None else w.facts.containers.get(container)
    if r is None:
        return {}
    out: dict[str, float | int | None] = {
        "cpu_request_cores": None if r.cpu_request_mc is None else r.cpu_request_mc / 1000,
        "cpu_limit_cores": None if r.cpu_limit_mc is None else r.cpu_limit_mc / 1000,
        "memory_request_bytes": r.memory_request_bytes,
        "memory_limit_bytes": r.memory_limit_bytes,
        "gpu_request": r.gpu_request,
        "gpu_limit": r.gpu_limit,
    }
    return {k: v for k, v in out.items() if v is not None}


def _memory(w: OpenWindow) -> dict[str, float | int]:
    out: dict[str, float | int | None] = {
        "memory_working_set_gb_seconds": w.working_set_byte_ns / 1e18,
        "memory_working_set_bytes": w.working_set_bytes,
        "memory_working_set_peak_bytes": w.working_set_peak_bytes,
        "memory_peak_bytes": w.memory_peak_bytes,
    }
    return {k: v for k, v in out.items() if v is not None}


def whole_seconds(before_ns: int, window_ns: int) -> int:
    """The watcher's whole-second ``duration`` of a window, carrying the fractions over
    windows, so the sum over a pod's life is its duration rounded down, never drifting."""
    return (before_ns + window_ns) // 10**9 - before_ns // 10**9


def build(
    w: OpenWindow,
    identity: Identity,
    billing: Billing,
    carried_ns: dict[str, int],
) -> list[Event]:
    """The events of one closed window; ``carried_ns`` (duration billed so far, per
    event key) is updated for the watcher's whole seconds."""
    if billing.per == "container":
        return [
            _event(w, identity, billing, carried_ns, name, c)
            for name, c in sorted(w.containers.items())
            if c.cpu_ns or c.runtime_ns or c.restarts
        ]
    return [_event(w, identity, billing, carried_ns, None, None)]


def _event(
    w: OpenWindow,
    identity: Identity,
    billing: Billing,
    carried_ns: dict[str, int],
    container: str | None,
    share: ContainerWindow | None,
) -> Event:
    data: dict[str, Any] = dict(identity.attributes)
    if share is None:
        cpu_ns, runtime_ns, restarts = w.cpu_ns, w.runtime_ns, w.restarts
        duration_ns, reserved = w.duration_ns, w.reserved
        data.update(
            cpu_user_seconds=w.user_ns / NS,
            cpu_system_seconds=w.system_ns / NS,
            containers={name: c.cpu_ns for name, c in w.containers.items()},
        )
        data.update(_memory(w))
    else:
        cpu_ns, runtime_ns, restarts = share.cpu_ns, share.runtime_ns, share.restarts
        duration_ns, reserved = share.runtime_ns, share.reserved
        data["container_name"] = container
    data.update(
        cpu_ns=cpu_ns,
        cpu_seconds=cpu_ns / NS,
        duration_seconds=duration_ns / NS,
        runtime_seconds=runtime_ns / NS,
        restarts=restarts,
        series=w.series,
        window_start=_when(w.start_at),
        window_end=_when(w.end_at),
    )
    data.update(_resources(w, container))
    data.update(_reserved(reserved))
    key = container or ""
    if billing.mode == "watcher":
        before = carried_ns.get(key, 0)
        data["duration"] = str(whole_seconds(before, duration_ns))
        carried_ns[key] = before + duration_ns
    parts = (
        w.pod_uid,
        key,
        w.series,
        w.start_ns,
        w.end_ns,
        w.counter_start,
        w.counter_end,
        cpu_ns,
    )
    return {
        "specversion": "1.0",
        "id": event_id(billing.source, identity.event_type, parts),
        "source": billing.source,
        "type": identity.event_type,
        "subject": identity.subject,
        "time": _when(w.end_at),
        "datacontenttype": "application/json",
        "data": data,
    }
