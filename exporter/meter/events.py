"""Pod windows → OpenMeter CloudEvents, mapped the way OpenMeter's Kubernetes collectors do.

One event per pod per window: billing is per pod and subject, and the pod counter is the
only exact one (it keeps exited containers' CPU). The per-container split rides along in
``data.containers``. The mapping follows the collector preset ``kube-pod-exec-time``
(shared/seeds/001) and the Pod Runtime Watcher (shared/seeds/000) so existing meters
(``SUM $.duration_seconds`` grouped by ``$.pod_namespace``/``$.pod_name``) keep working:

* subject: annotation ``openmeter.io/subject``, else label ``k8s.openmeter.cloud/subject``,
  else the pod name (else its UID);
* ``data``: every ``data.openmeter.io/KEY`` annotation and ``k8s.openmeter.cloud/data-KEY``
  label as ``KEY``, overridden by our own fields.

Event ids are a hash of what the window is (pod, bounds in time and in counter values),
so a resend after a timeout or a crash carries the same id and OpenMeter's (source, id)
deduplication drops it.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from exporter.kube.podmeta import PodMeta
from exporter.meter.deltas import PodWindow
from extractor.contract import rfc3339_millis

SUBJECT_ANNOTATION = "openmeter.io/subject"
SUBJECT_LABEL = "k8s.openmeter.cloud/subject"
DATA_ANNOTATION_PREFIX = "data.openmeter.io/"
DATA_LABEL_PREFIX = "k8s.openmeter.cloud/data-"
EXITED = "<exited>"
POD_OVERHEAD = "<pod>"

Event = dict[str, Any]


def subject_of(window: PodWindow, meta: PodMeta | None) -> str:
    if meta is not None:
        chosen = meta.annotations.get(SUBJECT_ANNOTATION) or meta.labels.get(SUBJECT_LABEL)
        return chosen or meta.name
    return window.name or window.pod_uid


def attributes_of(window: PodWindow, meta: PodMeta | None, node: str) -> dict[str, str]:
    """User data from labels/annotations first, then our metadata, which wins on clashes."""
    out: dict[str, str] = {}
    if meta is not None:
        for key, value in meta.labels.items():
            if key.startswith(DATA_LABEL_PREFIX) and key != DATA_LABEL_PREFIX:
                out[key.removeprefix(DATA_LABEL_PREFIX)] = value
        for key, value in meta.annotations.items():
            if key.startswith(DATA_ANNOTATION_PREFIX) and key != DATA_ANNOTATION_PREFIX:
                out[key.removeprefix(DATA_ANNOTATION_PREFIX)] = value
    namespace = meta.namespace if meta is not None else window.namespace
    name = meta.name if meta is not None else window.name
    if namespace:
        out["pod_namespace"] = namespace
    if name:
        out["pod_name"] = name
    out["pod_uid"] = meta.uid if meta is not None else window.pod_uid
    out["node_name"] = node
    if meta is not None and meta.owner is not None:
        out["owner_kind"] = meta.owner.kind
        out["owner_name"] = meta.owner.name
    return out


def container_names(window: PodWindow, meta: PodMeta | None) -> dict[str, str]:
    """Container id → name: the API's statuses first, then the runtime's labels."""
    names = {cid: n for cid, n in window.names.items() if n}
    if meta is not None:
        names.update({c.container_id: c.name for c in meta.containers if c.container_id})
    return names


def split_by_container(window: PodWindow, names: dict[str, str]) -> dict[str, int]:
    """Nanoseconds per container name; the remainder goes to the one exited container
    (by its last known name), to ``<exited>`` if several (or, for a pod that exited,
    unknown ones), else to ``<pod>``."""

    def name(cid: str) -> str:
        return names.get(cid) or cid[:12]

    out: dict[str, int] = {}
    for cid, ns in window.live.items():
        out[name(cid)] = out.get(name(cid), 0) + ns
    remainder = window.remainder_ns
    if remainder or window.exited:
        if len(window.exited) == 1:
            key = name(window.exited[0])
        else:
            key = EXITED if window.exited or window.finished else POD_OVERHEAD
        out[key] = out.get(key, 0) + remainder
    return out


def event_id(source: str, event_type: str, parts: tuple[object, ...]) -> str:
    """A UUID-shaped SHA-256 of what the window is: equal inputs, equal ids."""
    text = "\x1f".join(repr(p) for p in (source, event_type, *parts))
    digest = hashlib.sha256(text.encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=5))


def cloudevent(
    *,
    source: str,
    event_type: str,
    pod_uid: str,
    subject: str,
    start: float,
    end: float,
    cpu_ns: int,
    counter_start: int | None,
    counter_end: int | None,
    containers: dict[str, int],
    attributes: dict[str, str],
    memory_working_set_bytes: int | None,
) -> Event:
    data: dict[str, Any] = dict(attributes)
    data.update(
        cpu_ns=cpu_ns,
        cpu_seconds=cpu_ns / 1e9,
        duration_seconds=round(end - start, 3),
        window_start=rfc3339_millis(start),
        containers=containers,
    )
    if memory_working_set_bytes is not None:
        data["memory_working_set_bytes"] = memory_working_set_bytes
    parts = (pod_uid, start, end, counter_start, counter_end, cpu_ns)
    return {
        "specversion": "1.0",
        "id": event_id(source, event_type, parts),
        "source": source,
        "type": event_type,
        "subject": subject,
        "time": rfc3339_millis(end),
        "datacontenttype": "application/json",
        "data": data,
    }
