"""Per-pod open windows: poll-sized deltas added up until a metering window closes.

The exporter polls every few seconds but bills once a minute (``meter_interval_seconds``).
Computing deltas at every poll and adding them here, instead of only at the minute, is
what keeps a pod that lives and dies between two minutes on the bill: its last poll's
reading is already in its open window. Metadata is captured at every poll for the same
reason: once the pod is gone the API server may no longer know it.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, ConfigDict

from exporter.kube.podmeta import PodMeta
from exporter.meter.deltas import PodWindow
from exporter.meter.events import (
    Event,
    attributes_of,
    cloudevent,
    container_names,
    split_by_container,
    subject_of,
)

PodLookup = Callable[[str], PodMeta | None]


class OpenWindow(BaseModel):
    """One pod's usage since its window opened; integers only, so sums stay exact."""

    model_config = ConfigDict(extra="forbid")

    pod_uid: str
    start: float
    end: float
    cpu_ns: int
    counter_start: int | None
    counter_end: int | None
    containers: dict[str, int]
    names: dict[str, str]
    subject: str
    attributes: dict[str, str]
    memory_working_set_bytes: int | None


def accrue(
    open_windows: dict[str, OpenWindow], windows: list[PodWindow], pods: PodLookup, node: str
) -> dict[str, OpenWindow]:
    """``open_windows`` with ``windows`` added (a new dict; the input is not changed)."""
    out = dict(open_windows)
    for w in windows:
        meta = pods(w.pod_uid)
        before = out.get(w.pod_uid)
        names = {**(before.names if before is not None else {}), **container_names(w, meta)}
        split = split_by_container(w, names)
        if before is None:
            out[w.pod_uid] = OpenWindow(
                pod_uid=w.pod_uid,
                start=w.start,
                end=w.end,
                cpu_ns=w.cpu_ns,
                counter_start=w.counter_start,
                counter_end=w.counter_end,
                containers=split,
                names=names,
                subject=subject_of(w, meta),
                attributes=attributes_of(w, meta, node),
                memory_working_set_bytes=w.memory_working_set_bytes,
            )
            continue
        containers = dict(before.containers)
        for name, ns in split.items():
            containers[name] = containers.get(name, 0) + ns
        # without metadata now (pod deleted from the API), keep what was known
        subject = subject_of(w, meta) if meta is not None else before.subject
        attributes = attributes_of(w, meta, node) if meta is not None else before.attributes
        out[w.pod_uid] = before.model_copy(
            update={
                "end": w.end,
                "cpu_ns": before.cpu_ns + w.cpu_ns,
                "counter_end": w.counter_end,
                "containers": containers,
                "names": names,
                "subject": subject,
                "attributes": attributes,
                "memory_working_set_bytes": w.memory_working_set_bytes,
            }
        )
    return out


def close(open_windows: dict[str, OpenWindow], source: str, event_type: str) -> list[Event]:
    """One CloudEvent per open window, in a stable order."""
    return [
        cloudevent(
            source=source,
            event_type=event_type,
            pod_uid=w.pod_uid,
            subject=w.subject,
            start=w.start,
            end=w.end,
            cpu_ns=w.cpu_ns,
            counter_start=w.counter_start,
            counter_end=w.counter_end,
            containers=w.containers,
            attributes=w.attributes,
            memory_working_set_bytes=w.memory_working_set_bytes,
        )
        for _, w in sorted(open_windows.items())
    ]
