"""telemd-kubernetes-adapter's messages: which pod changes it announces, in its exact bytes.

Its consumers subscribe to the Redis channel ``galileo/events`` and parse lines
``<unix seconds, 7 decimals> pod/<event> <JSON>``. The JSON is the adapter's
``PodMessage`` as its source marshals it; its README shows a flat object
(``containerID``, ``podName`` …) that no version of that source ever sent, so the source
is what consumers parse and what this writes (docs/telemd.md).

Events, as the adapter's informer handlers decide them:

* a pod seen for the first time → ``pod/create`` (the adapter's informer also announces
  every existing pod at its start this way);
* Pending → Running, once the pod has an IP and its first container an ID →
  ``pod/running``; Pending → Pending → ``pod/pending``; a deletion timestamp newly set →
  ``pod/shutdown``;
* the pod removed → ``pod/delete``.

Resource quantities are the strings the API server wrote (it always writes the canonical
form, which is what Go's ``json.Marshal`` of a ``resource.Quantity`` gives), each marshalled
once more as the adapter does, so ``"cpu": "\\"250m\\""`` keeps its embedded quotes.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Literal

from exporter.feeds.gojson import GoValue, Struct, marshal
from exporter.kube.podmeta import ContainerStatus, PodMeta

CHANNEL = "galileo/events"
TelemdEvent = Literal["create", "running", "pending", "shutdown", "delete"]

_QOS = {"guaranteed": "Guaranteed", "burstable": "Burstable", "besteffort": "BestEffort"}


def _time(seconds: float | None) -> str | None:
    """metav1.Time as JSON: RFC 3339 in UTC, whole seconds."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _spec_match(container: ContainerStatus, regular: list[ContainerStatus]) -> bool:
    """The adapter's findContainer: the only container, else same name and an image that
    contains the spec image's name before its first colon."""
    if len(regular) == 1:
        return True
    spec_image = container.spec_image or ""
    return spec_image.split(":")[0] in (container.image or "")


def _container(c: ContainerStatus) -> Struct:
    prefixed = f"{c.runtime}://{c.container_id}" if c.container_id else ""
    return Struct(
        (
            ("id", prefixed),
            ("name", c.name),
            ("image", c.spec_image or ""),
            ("port", c.port if c.port is not None else -1),
            ("resource_requests", {k: marshal(v) for k, v in c.requests.items()}),
            ("resource_limits", {k: marshal(v) for k, v in c.limits.items()}),
        )
    )


def pod_message(pod: PodMeta) -> str:
    """The adapter's PodMessage JSON for this pod, as Go marshals it."""
    regular = [c for c in pod.containers if c.kind == "regular"]
    containers: dict[str, GoValue] = {
        c.name: _container(c)
        for c in regular
        if c.state is not None and _spec_match(c, regular)  # containers with a status
    }
    return marshal(
        Struct(
            (
                ("podUid", pod.uid),
                ("containers", containers),
                ("namespace", pod.namespace),
                ("hostIP", pod.host_ip or ""),
                ("name", pod.name),
                ("nodeName", pod.node or ""),
                ("podIP", pod.pod_ip or ""),
                ("qosClass", _QOS.get(pod.qos or "", "")),
                ("startTime", _time(pod.start_time)),
                ("labels", dict(pod.labels) if pod.labels else None),
                ("status", pod.phase or ""),
            )
        )
    )


def line(event: TelemdEvent, pod: PodMeta, now_ns: int | None = None) -> str:
    """One ``galileo/events`` message; the timestamp as the adapter prints it
    (``%.7f`` of UnixNano / 1e9)."""
    ns = time.time_ns() if now_ns is None else now_ns
    return f"{ns / 1e9:.7f} pod/{event} {pod_message(pod)}"


def _running_ready(pod: PodMeta) -> bool:
    """The adapter announces a running pod only with a pod IP and a first container ID."""
    regular = [c for c in pod.containers if c.kind == "regular" and c.state is not None]
    return bool(pod.pod_ip) and bool(regular) and bool(regular[0].container_id)


def events_for(old: PodMeta | None, new: PodMeta | None) -> list[tuple[TelemdEvent, PodMeta]]:
    """What the adapter announces for one change of a pod (None: not seen / removed)."""
    if new is None:
        return [("delete", old)] if old is not None else []
    if old is None:
        return [("create", new)]
    if old.phase == "Pending" and new.phase == "Running":
        return [("running", new)] if _running_ready(new) else []
    if old.phase == "Pending" and new.phase == "Pending":
        return [("pending", new)]
    if not old.deleting and new.deleting:
        return [("shutdown", new)]
    return []
