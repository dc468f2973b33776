"""Pod, node and Status objects as the API server writes them, and its selectors."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

JSON = dict[str, Any]


API_AUDIENCE = "https://kubernetes.default.svc.cluster.local"


PORTFORWARD_PROTOCOL = "v4.channel.k8s.io"


def status_object(code: int, reason: str, message: str) -> JSON:
    """A metav1.Status, the body of every API error."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def rfc3339(when: datetime) -> str:
    """metav1.Time wire format: seconds precision, Z suffix."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def random_container_id() -> str:
    """64 hex characters, like every containerd/CRI-O container ID."""
    return secrets.token_hex(32)


@dataclass
class FakeContainer:
    """One container of a pod built by make_pod: its spec and its status."""

    name: str
    image: str = "docker.io/library/nginx:1.27"
    state: str = "running"  # running | waiting | terminated | none (no status yet)
    container_id: str | None = None  # bare 64 hex; generated when state is not waiting
    runtime: str = "containerd"
    image_id: str | None = None
    requests: dict[str, str] = field(default_factory=dict)
    limits: dict[str, str] = field(default_factory=dict)
    restart_count: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int = 0
    reason: str | None = None
    restart_policy: str | None = None  # "Always" on an init container makes it a sidecar

    def spec(self) -> JSON:
        out: JSON = {"name": self.name, "image": self.image, "resources": {}}
        if self.requests:
            out["resources"]["requests"] = dict(self.requests)
        if self.limits:
            out["resources"]["limits"] = dict(self.limits)
        if self.restart_policy:
            out["restartPolicy"] = self.restart_policy
        return out

    def status(self, now: datetime) -> JSON | None:
        if self.state == "none":
            return None
        if self.state != "waiting" and self.container_id is None:
            self.container_id = random_container_id()
        started = self.started_at or now
        if self.image_id is None:
            self.image_id = f"{self.image.split(':')[0]}@sha256:{secrets.token_hex(32)}"
        state: JSON
        if self.state == "running":
            state = {"running": {"startedAt": rfc3339(started)}}
        elif self.state == "terminated":
            finished = self.finished_at or now
            state = {
                "terminated": {
                    "exitCode": self.exit_code,
                    "reason": self.reason or ("Completed" if self.exit_code == 0 else "Error"),
                    "startedAt": rfc3339(started),
                    "finishedAt": rfc3339(finished),
                    "containerID": f"{self.runtime}://{self.container_id}",
                }
            }
        else:
            state = {"waiting": {"reason": self.reason or "ContainerCreating"}}
        out: JSON = {
            "name": self.name,
            "image": self.image,
            "imageID": self.image_id,
            "ready": self.state == "running",
            "started": self.state == "running",
            "restartCount": self.restart_count,
            "state": state,
            "lastState": {},
        }
        if self.container_id is not None:
            out["containerID"] = f"{self.runtime}://{self.container_id}"
        return out


def _qos_class(containers: Iterable[FakeContainer]) -> str:
    """The kubelet's QoS rule: all limits == requests (cpu+memory) -> Guaranteed."""
    containers = list(containers)
    if all(not c.requests and not c.limits for c in containers):
        return "BestEffort"
    for c in containers:
        for res in ("cpu", "memory"):
            limit = c.limits.get(res)
            if limit is None or c.requests.get(res, limit) != limit:
                return "Burstable"
    return "Guaranteed"


def _containers(items: Iterable[FakeContainer | str]) -> list[FakeContainer]:
    return [c if isinstance(c, FakeContainer) else FakeContainer(c) for c in items]


def make_pod(
    name: str,
    namespace: str = "default",
    uid: str | None = None,
    node: str | None = "node-a",
    containers: Iterable[FakeContainer | str] | None = None,
    *,
    init_containers: Iterable[FakeContainer | str] = (),
    ephemeral_containers: Iterable[FakeContainer | str] = (),
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    owner: tuple[str, str] | None = None,
    owner_references: list[JSON] | None = None,
    qos_class: str | None = None,
    phase: str = "Running",
    host_ip: str = "10.0.0.2",
    pod_ip: str | None = "10.244.0.5",
    start_time: datetime | None = None,
) -> JSON:
    """Realistic Pod JSON as the API server returns it (spec, status, owner references).

    ``containers`` are names or FakeContainer; ``owner`` is (kind, name), e.g.
    ("ReplicaSet", "web-7d4b9c8f6"); QoS is derived from requests/limits unless given.
    """
    now = datetime.now(UTC)
    started = start_time or now
    regular = [
        c if isinstance(c, FakeContainer) else FakeContainer(c) for c in containers or ["app"]
    ]
    inits = [c if isinstance(c, FakeContainer) else FakeContainer(c) for c in init_containers]
    ephemerals = [
        c if isinstance(c, FakeContainer) else FakeContainer(c) for c in ephemeral_containers
    ]
    refs = owner_references
    if refs is None and owner is not None:
        kind, owner_name = owner
        api_version = {
            "ReplicaSet": "apps/v1",
            "StatefulSet": "apps/v1",
            "DaemonSet": "apps/v1",
            "Deployment": "apps/v1",
            "Job": "batch/v1",
            "CronJob": "batch/v1",
        }.get(kind, "v1")
        refs = [
            {
                "apiVersion": api_version,
                "kind": kind,
                "name": owner_name,
                "uid": str(uuid.uuid4()),
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    metadata: JSON = {
        "name": name,
        "namespace": namespace,
        "uid": uid or str(uuid.uuid4()),
        "creationTimestamp": rfc3339(started),
        "labels": dict(labels or {}),
        "annotations": dict(annotations or {}),
    }
    if refs:
        metadata["ownerReferences"] = refs
    spec: JSON = {
        "containers": [c.spec() for c in regular],
        "restartPolicy": "Always",
        "schedulerName": "default-scheduler",
    }
    if node is not None:
        spec["nodeName"] = node
    if inits:
        spec["initContainers"] = [c.spec() for c in inits]
    if ephemerals:
        spec["ephemeralContainers"] = [
            {k: v for k, v in c.spec().items() if k != "resources"} for c in ephemerals
        ]
    status: JSON = {
        "phase": phase,
        "hostIP": host_ip,
        "qosClass": qos_class or _qos_class([*regular, *inits]),
        "startTime": rfc3339(started),
        "containerStatuses": [s for c in regular if (s := c.status(now)) is not None],
    }
    if pod_ip is not None:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    if inits:
        status["initContainerStatuses"] = [s for c in inits if (s := c.status(now)) is not None]
    if ephemerals:
        status["ephemeralContainerStatuses"] = [
            s for c in ephemerals if (s := c.status(now)) is not None
        ]
    return {"metadata": metadata, "spec": spec, "status": status}


def make_node(
    name: str,
    *,
    labels: dict[str, str] | None = None,
    os: str = "linux",
    unschedulable: bool = False,
    taints: list[JSON] | None = None,
) -> JSON:
    """Realistic Node JSON: the kubelet's well-known labels, spec and a Ready status."""
    spec: JSON = {"podCIDR": "10.244.0.0/24"}
    if unschedulable:
        spec["unschedulable"] = True
    if taints:
        spec["taints"] = list(taints)
    heartbeat = rfc3339(datetime.now(UTC))
    return {
        "metadata": {
            "name": name,
            "uid": str(uuid.uuid4()),
            "creationTimestamp": heartbeat,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": os,
                "kubernetes.io/arch": "amd64",
                **(labels or {}),
            },
        },
        "spec": spec,
        "status": {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "lastHeartbeatTime": heartbeat,
                }
            ],
            "addresses": [
                {"type": "InternalIP", "address": "10.0.0.2"},
                {"type": "Hostname", "address": name},
            ],
            "nodeInfo": {"operatingSystem": os, "architecture": "amd64"},
        },
    }


_FIELD_DEFAULTS = {"spec.unschedulable": "false"}


def _field_value(obj: JSON, path: str) -> str:
    """A field as the server's field selectors see it: booleans as true/false, absent ones
    as their zero value."""
    node: Any = obj
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if node is None:
        return _FIELD_DEFAULTS.get(path, "")
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)


_SUPPORTED_FIELDS = {"spec.nodeName", "metadata.name", "metadata.namespace", "status.phase"}


_NODE_FIELDS = {"metadata.name", "spec.unschedulable"}


def parse_field_selector(
    text: str, supported: frozenset[str] | set[str] = _SUPPORTED_FIELDS
) -> Callable[[JSON], bool]:
    """fieldSelector terms joined by commas, as the real server accepts them for `supported`
    fields (the pod fields by default)."""
    terms: list[tuple[str, str, bool]] = []
    for raw in filter(None, (t.strip() for t in text.split(","))):
        negate = "!=" in raw
        key, _, value = raw.partition("!=" if negate else "==" if "==" in raw else "=")
        if key not in supported:
            raise ValueError(f'"{key}" is not a known field selector: only "{raw}"')
        terms.append((key, value, negate))
    return lambda pod: all((_field_value(pod, k) == v) != neg for k, v, neg in terms)


def _split_selector(text: str) -> list[str]:
    """Split on commas outside parentheses (``a in (x,y),b`` has two terms)."""
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def _requirement(term: str) -> tuple[str, str, frozenset[str]]:
    """One label requirement as (key, operator, values)."""
    words = term.split(None, 1)
    if len(words) == 2 and words[1].split("(", 1)[0].strip() in ("in", "notin"):
        op, _, rest = words[1].partition("(")
        return words[0], op.strip(), frozenset(v.strip() for v in rest.rstrip(")").split(","))
    for op in ("!=", "==", "="):
        if op in term:
            key, _, value = term.partition(op)
            return key.strip(), "!=" if op == "!=" else "=", frozenset([value.strip()])
    key = term.removeprefix("!").strip()
    if not key.replace("-", "").replace(".", "").replace("/", "").replace("_", "").isalnum():
        raise ValueError(f"unable to parse requirement: {term!r}")
    return key, "!" if term.startswith("!") else "exists", frozenset()


def _satisfied(labels: dict[str, str], key: str, op: str, values: frozenset[str]) -> bool:
    value = labels.get(key)
    return {
        "in": value in values,
        "=": value in values,
        "notin": value not in values,
        "!=": value not in values,
        "!": value is None,
        "exists": value is not None,
    }[op]


def parse_label_selector(text: str) -> Callable[[JSON], bool]:
    """Equality-, set- and existence-based label selectors."""
    requirements = [_requirement(term) for term in _split_selector(text)]
    return lambda pod: all(
        _satisfied(pod["metadata"].get("labels") or {}, *req) for req in requirements
    )
