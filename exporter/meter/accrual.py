"""Per-pod open windows: every poll's readings added up until a metering window closes.

(The hot loop builds its models with ``model_construct``: every value is an integer this
module computed, and a node with thousands of pods accrues every few seconds.)

The exporter polls every few seconds but bills once a window (``METER_INTERVAL``).
Adding each poll's reading here, instead of reading counters only at the window's end,
is what keeps a pod that lives and dies inside a window on the bill. Metadata is copied
at every poll for the same reason: once the pod is gone the API server may no longer
know it. Everything is an integer (nanoseconds, bytes × nanoseconds, millicores ×
nanoseconds), so sums stay exact; a counter reset opens a window of a new series.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field

from exporter.kube.podmeta import PodMeta
from exporter.meter.deltas import PodReading
from exporter.meter.facts import PodFacts, Resources, facts_of

PodLookup = Callable[[str], PodMeta | None]
POD_REMAINDER = "<pod>"
"""The part of the pod's CPU no container accounts for: the sandbox, the pod's own skew."""


class Reserved(BaseModel):
    """Requests and limits integrated over the pod's running time."""

    model_config = ConfigDict(extra="forbid")

    cpu_request_mc_ns: int = 0
    cpu_limit_mc_ns: int = 0
    memory_request_byte_ns: int = 0
    memory_limit_byte_ns: int = 0
    gpu_request_ns: int = 0
    gpu_limit_ns: int = 0

    def plus(self, r: Resources, span_ns: int) -> Reserved:
        def part(value: int | None) -> int:
            return (value or 0) * span_ns

        return Reserved.model_construct(
            cpu_request_mc_ns=self.cpu_request_mc_ns + part(r.cpu_request_mc),
            cpu_limit_mc_ns=self.cpu_limit_mc_ns + part(r.cpu_limit_mc),
            memory_request_byte_ns=self.memory_request_byte_ns + part(r.memory_request_bytes),
            memory_limit_byte_ns=self.memory_limit_byte_ns + part(r.memory_limit_bytes),
            gpu_request_ns=self.gpu_request_ns + part(r.gpu_request),
            gpu_limit_ns=self.gpu_limit_ns + part(r.gpu_limit),
        )


class ContainerWindow(BaseModel):
    """One container name's share of a pod's window."""

    model_config = ConfigDict(extra="forbid")

    cpu_ns: int = 0
    runtime_ns: int = 0
    restarts: int = 0
    reserved: Reserved = Field(default_factory=Reserved)


class OpenWindow(BaseModel):
    """One pod's usage since its window opened."""

    model_config = ConfigDict(extra="forbid")

    pod_uid: str
    namespace: str | None = None
    name: str | None = None
    series: int = 0
    first_seen_ns: int
    start_at: float
    start_ns: int
    end_at: float
    end_ns: int
    cpu_ns: int = 0
    user_ns: int = 0
    system_ns: int = 0
    counter_start: int | None = None
    counter_end: int | None = None
    duration_ns: int = 0
    runtime_ns: int = 0
    restarts: int = 0
    working_set_byte_ns: int = 0
    working_set_bytes: int | None = None
    working_set_peak_bytes: int | None = None
    memory_peak_bytes: int | None = None
    reserved: Reserved = Field(default_factory=Reserved)
    containers: dict[str, ContainerWindow] = Field(default_factory=dict)
    facts: PodFacts | None = None
    finished: bool = False


_EMPTY = ContainerWindow()
_NO_RESOURCES = Resources()


def window_key(uid: str, series: int) -> str:
    return uid if series == 0 else f"{uid}#{series}"


def _max(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


def _name(cid: str, name: str | None, facts: PodFacts | None) -> str:
    """Container id → name: the API's statuses first, then the runtime's labels."""
    if facts is not None and cid in facts.names:
        return facts.names[cid]
    return name or cid[:12]


def accrue(
    open_windows: dict[str, OpenWindow],
    readings: list[PodReading],
    pods: PodLookup,
) -> dict[str, OpenWindow]:
    """``open_windows`` with ``readings`` added (a new dict; the input is not changed)."""
    out = dict(open_windows)
    known = {w.pod_uid: w.facts for w in open_windows.values() if w.facts is not None}
    for r in readings:
        key = window_key(r.pod_uid, r.series)
        meta = pods(r.pod_uid)
        before = out.get(key)
        facts: PodFacts | None
        if meta is not None:
            facts = known[r.pod_uid] = facts_of(meta)
        else:  # gone from the API: what was known (a window of an earlier series too)
            facts = before.facts if before is not None and before.facts else known.get(r.pod_uid)
        w = before or OpenWindow(
            pod_uid=r.pod_uid,
            series=r.series,
            first_seen_ns=r.end_ns,
            start_at=r.start_at,
            start_ns=r.start_ns,
            end_at=r.end_at,
            end_ns=r.end_ns,
            counter_start=r.counter_start,
        )
        containers = dict(w.containers)  # entries are replaced, never changed
        pod_resources = facts.resources if facts is not None else _NO_RESOURCES
        for cid, use in r.containers.items():
            name = _name(cid, use.name, facts)
            c = containers.get(name) or _EMPTY
            own = facts.containers.get(name) if facts is not None else None
            containers[name] = ContainerWindow.model_construct(
                cpu_ns=c.cpu_ns + use.cpu_ns,
                runtime_ns=c.runtime_ns + use.runtime_ns,
                restarts=c.restarts + use.restarts,
                reserved=c.reserved.plus(own, r.duration_ns) if own is not None else c.reserved,
            )
        if r.remainder_ns:
            c = containers.get(POD_REMAINDER) or _EMPTY
            containers[POD_REMAINDER] = c.model_copy(update={"cpu_ns": c.cpu_ns + r.remainder_ns})
        out[key] = w.model_copy(
            update={
                "namespace": r.namespace or w.namespace,
                "name": r.name or w.name,
                "end_at": max(w.end_at, r.end_at),
                "end_ns": max(w.end_ns, r.end_ns),
                "cpu_ns": w.cpu_ns + r.cpu_ns,
                "user_ns": w.user_ns + r.user_ns,
                "system_ns": w.system_ns + r.system_ns,
                "counter_end": r.counter_end,
                "duration_ns": w.duration_ns + r.duration_ns,
                "runtime_ns": w.runtime_ns + r.runtime_ns,
                "restarts": w.restarts + r.restarts,
                "working_set_byte_ns": w.working_set_byte_ns + r.working_set_byte_ns,
                "working_set_bytes": r.working_set
                if r.working_set is not None
                else w.working_set_bytes,
                "working_set_peak_bytes": _max(w.working_set_peak_bytes, r.working_set),
                "memory_peak_bytes": _max(
                    _max(w.memory_peak_bytes, r.memory_current), r.memory_peak
                ),
                "reserved": w.reserved.plus(pod_resources, r.duration_ns),
                "containers": containers,
                "facts": facts,
                "finished": w.finished or r.finished,
            }
        )
    return out
