"""A faithful fake Kubernetes API server (aiohttp, plain HTTP on 127.0.0.1:0) for tests.

Why a fake and not mocks: the reflector, the auth middleware and the ``collect`` command
talk to the API server through real HTTP clients (the official ``kubernetes`` client,
httpx, aiohttp). Only a server that speaks the real wire protocol -- list metadata,
resourceVersions, chunked watch streams, bookmarks, 410 Gone, Status objects -- can show
that those clients survive what a real cluster does to them.

Stable API (others rely on it; only add to it)::

    async with FakeApiServer(bookmark_interval=0.5) as api:
        api.url                          # "http://127.0.0.1:<port>"
        api.token                        # bearer token every request must carry
        api.write_kubeconfig(path)       # kubeconfig (JSON, valid YAML) -> path
        api.add_pod(make_pod("web-1", "default", node="node-a"))  # -> stored copy
        api.update_pod(pod_dict)         # replace by namespace/name, new resourceVersion
        api.delete_pod("default", "web-1")
        api.resource_version             # current resourceVersion (int)
        api.compact()                    # forget history: older watch RVs get 410 Gone
                                         # (an ERROR event; with expired_as_http_status=True
                                         # an HTTP 410 Status instead, as etcd-direct watches)
        await api.drop_watches()         # cut every open watch connection abruptly
        await api.pause() / await api.resume()  # stop / restart listening (same port)
        api.set_pod_backend("default", "web-1", "http://127.0.0.1:9999")  # pod proxy target
        api.set_pod_portforward("default", "web-1", 8443, "127.0.0.1", 9998)  # tunnel target
        api.add_token("tok", "alice", ["team-a"], audiences=None)  # for TokenReview
        api.allow("alice", "get", path="/metrics")                 # for SubjectAccessReview
        api.allow("group:team-a", "list", resource="pods", namespace="default")
        api.set_configmap("kube-system", "extension-apiserver-authentication", {"k": "v"})
        api.delete_configmap("kube-system", "extension-apiserver-authentication")
        api.add_node(make_node("node-a", unschedulable=False, os="linux"))  # -> stored copy
        api.delete_node("node-a")
        api.forbid("configmaps")         # configmaps or nodes: 403 Status, as RBAC answers
        api.calls["watch"]               # Counter of calls by kind (see below)
        api.proxy_requests               # [(method, ns, name, scheme, port, path, query)]
        api.portforward_requests         # [(ns, name, ports query value)]
        api.pod_requests                 # [(path, {query param: value})] of pod lists/watches
        api.access_reviews               # [spec] of every SubjectAccessReview, in order

Endpoints (all require ``Authorization: Bearer <api.token>``, else 401 Status):

* ``GET /api/v1/pods`` and ``GET /api/v1/namespaces/{ns}/pods``: list with
  ``fieldSelector`` (``spec.nodeName``, ``metadata.name``, ``metadata.namespace``,
  ``status.phase``; ``=``, ``==``, ``!=``), ``labelSelector`` (``k=v``, ``k==v``,
  ``k!=v``, ``k``, ``!k``, ``k in (a,b)``, ``k notin (a,b)``), ``limit``/``continue``.
  With ``watch=true``/``watch=1``: a chunked stream of JSON lines
  ``{"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": ...}`` starting after
  ``resourceVersion`` (absent/"0": synthetic ADDED events for the current state first),
  BOOKMARK events every ``bookmark_interval`` seconds when ``allowWatchBookmarks=true``,
  closed after ``timeoutSeconds``; an ERROR event carrying a ``Status`` with code 410
  when the resourceVersion is older than the compaction horizon. Objects that stop or
  start matching the selectors are sent as DELETED / ADDED, as the real server does.
* ``GET /api/v1/namespaces/{ns}/pods/{name}``: one pod, or a 404 Status.
* ``GET|POST|PUT|DELETE /api/v1/namespaces/{ns}/pods/{[https:]name[:port]}/proxy/{path}``:
  forwarded (method, query, body, content type) to the URL registered with
  ``set_pod_backend``; 503 Status when none is registered.
* ``GET /api/v1/namespaces/{ns}/pods/{name}/portforward?ports=N[,M]``: the WebSocket
  port-forward of kubelet's ``portforward/websocket.go`` (subprotocol
  ``v4.channel.k8s.io``; a client offering none gets the same binary framing). Every
  binary message starts with its channel byte: port i has data channel 2i and error
  channel 2i+1, and each of those first carries the port as 2 bytes little-endian. Then
  bytes are relayed between the data channel and a TCP connection to the target set with
  ``set_pod_portforward``; when that connection cannot be made, the error channel carries
  ``error forwarding port N to pod NAME, uid UID: …``. The WebSocket closes once the pod
  side ends (as kubelet closes it when its forwards end); a closed WebSocket closes the
  pod side. 404 Status for an unknown pod, 400 for a non-WebSocket request or bad ports.
* ``POST /apis/authentication.k8s.io/v1/tokenreviews`` and
  ``POST /apis/authorization.k8s.io/v1/subjectaccessreviews``.
* ``GET /api/v1/namespaces/{ns}/configmaps/{name}``: one ConfigMap (``data`` as stored with
  ``set_configmap``), or a 404 Status.
* ``GET /api/v1/nodes``: a NodeList, with ``labelSelector`` (as for pods) and
  ``fieldSelector`` (``metadata.name``, ``spec.unschedulable``, as the real server allows).

``forbid(resource)`` makes requests for ``configmaps`` or ``nodes`` answer 403 with the
Status RBAC gives.

``calls`` keys: ``list``, ``watch``, ``get``, ``proxy``, ``portforward``,
``tokenreviews``, ``subjectaccessreviews``, ``configmaps``, ``nodes``, ``forbidden``,
``unauthorized``.

Mutating methods may be called from the event loop running the server or from any other
thread; watchers are woken on the server's loop.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import json
import secrets
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp import web

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


# --- selectors -------------------------------------------------------------------------


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


# --- the server ------------------------------------------------------------------------


@dataclass
class _Event:
    rv: int
    type: str
    old: JSON | None
    new: JSON


@dataclass
class _Grant:
    subject: str
    verb: str
    path: str | None
    resource: str | None
    subresource: str | None
    namespace: str | None
    name: str | None
    api_group: str

    def covers(self, user: str, groups: list[str], spec: JSON) -> bool:
        if self.subject not in (user, *(f"group:{g}" for g in groups)):
            return False
        non_resource = spec.get("nonResourceAttributes")
        resource = spec.get("resourceAttributes")
        if non_resource is not None:
            return (
                self.path is not None
                and self.verb in ("*", non_resource.get("verb"))
                and _path_matches(self.path, non_resource.get("path", ""))
            )
        if resource is None or self.resource is None:
            return False
        return (
            self.verb in ("*", resource.get("verb"))
            and self.resource in ("*", resource.get("resource"))
            and self.api_group in ("*", resource.get("group", ""))
            and (self.subresource is None or self.subresource == resource.get("subresource", ""))
            and (self.namespace is None or self.namespace == resource.get("namespace", ""))
            and (self.name is None or self.name == resource.get("name", ""))
        )


def _path_matches(pattern: str, path: str) -> bool:
    """RBAC nonResourceURLs: exact, or a prefix when the rule ends in '*'."""
    if pattern.endswith("*"):
        return path.startswith(pattern[:-1])
    return path == pattern


@dataclass(eq=False)
class _Watcher:
    wake: asyncio.Event
    dropped: bool = False


class FakeApiServer:
    """The pod, review and proxy endpoints of a kube-apiserver, in memory."""

    def __init__(
        self,
        *,
        bookmark_interval: float = 1.0,
        token: str | None = None,
        expired_as_http_status: bool = False,
    ) -> None:
        self.token = token or secrets.token_urlsafe(24)
        self.bookmark_interval = bookmark_interval
        self.expired_as_http_status = expired_as_http_status
        self.calls: Counter[str] = Counter()
        self.proxy_requests: list[tuple[str, str, str, str, str, str, str]] = []
        self.portforward_requests: list[tuple[str, str, str]] = []
        self.pod_requests: list[tuple[str, dict[str, str]]] = []
        self.access_reviews: list[JSON] = []
        self._lock = threading.RLock()
        self._pods: dict[tuple[str, str], JSON] = {}
        self._log: list[_Event] = []
        self._rv = 100
        self._horizon = 0
        self._watchers: set[_Watcher] = set()
        self._backends: dict[tuple[str, str], str] = {}
        self._forwards: dict[tuple[str, str, int], tuple[str, int]] = {}
        self._tokens: dict[str, JSON] = {}
        self._grants: list[_Grant] = []
        self._configmaps: dict[tuple[str, str], JSON] = {}
        self._nodes: dict[str, JSON] = {}
        self._forbidden: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._port = 0
        self._client: aiohttp.ClientSession | None = None

    # -- lifecycle

    async def __aenter__(self) -> FakeApiServer:
        self._loop = asyncio.get_running_loop()
        app = web.Application()
        app.router.add_get("/api/v1/pods", self._pods_collection)
        app.router.add_get("/api/v1/namespaces/{ns}/pods", self._pods_collection)
        app.router.add_get("/api/v1/namespaces/{ns}/pods/{name}", self._get_pod)
        app.router.add_get("/api/v1/namespaces/{ns}/pods/{name}/portforward", self._portforward)
        app.router.add_route("*", "/api/v1/namespaces/{ns}/pods/{target}/proxy", self._proxy)
        app.router.add_route(
            "*", "/api/v1/namespaces/{ns}/pods/{target}/proxy/{path:.*}", self._proxy
        )
        app.router.add_get("/api/v1/namespaces/{ns}/configmaps/{name}", self._get_configmap)
        app.router.add_get("/api/v1/nodes", self._nodes_collection)
        app.router.add_post("/apis/authentication.k8s.io/v1/tokenreviews", self._token_review)
        app.router.add_post(
            "/apis/authorization.k8s.io/v1/subjectaccessreviews", self._access_review
        )
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        await self._listen()
        self._client = aiohttp.ClientSession()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.drop_watches()
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _listen(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, "127.0.0.1", self._port, reuse_address=True)
        await self._site.start()
        server = self._site._server
        assert isinstance(server, asyncio.base_events.Server)
        self._port = server.sockets[0].getsockname()[1]

    async def pause(self) -> None:
        """Stop listening (new connections are refused) and cut open watches."""
        await self.drop_watches()
        if self._site is not None:
            await self._site.stop()
            self._site = None
        assert self._runner is not None and self._runner.server is not None
        for connection in list(self._runner.server.connections):
            connection.force_close()

    async def resume(self) -> None:
        """Listen again on the same port."""
        if self._site is None:
            await self._listen()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def write_kubeconfig(self, path: str | Path) -> Path:
        """A kubeconfig for this server with its bearer token (JSON is valid YAML)."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": self.token}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
            "current-context": "fake",
        }
        out = Path(path)
        out.write_text(json.dumps(config, indent=2))
        return out

    # -- pods

    @property
    def resource_version(self) -> int:
        with self._lock:
            return self._rv

    def pod(self, namespace: str, name: str) -> JSON:
        """A copy of the stored pod (KeyError when absent)."""
        with self._lock:
            return copy.deepcopy(self._pods[(namespace, name)])

    def add_pod(self, pod: JSON) -> JSON:
        """Create a pod; uid and creationTimestamp are filled when missing."""
        with self._lock:
            stored = copy.deepcopy(pod)
            meta = stored.setdefault("metadata", {})
            meta.setdefault("namespace", "default")
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", rfc3339(datetime.now(UTC)))
            key = (meta["namespace"], meta["name"])
            if key in self._pods:
                raise ValueError(f'pods "{key[1]}" already exists')
            return self._record("ADDED", key, None, stored)

    def update_pod(self, pod: JSON) -> JSON:
        """Replace a pod by namespace/name; its uid is kept."""
        with self._lock:
            stored = copy.deepcopy(pod)
            meta = stored["metadata"]
            key = (meta.get("namespace", "default"), meta["name"])
            old = self._pods[key]
            meta["uid"] = old["metadata"]["uid"]
            meta["namespace"] = key[0]
            return self._record("MODIFIED", key, old, stored)

    def delete_pod(self, namespace: str, name: str) -> JSON:
        """Delete at once (grace period 0); the DELETED event carries a new RV."""
        with self._lock:
            old = self._pods[(namespace, name)]
            return self._record("DELETED", (namespace, name), old, copy.deepcopy(old))

    def _record(self, kind: str, key: tuple[str, str], old: JSON | None, new: JSON) -> JSON:
        self._rv += 1
        new["metadata"]["resourceVersion"] = str(self._rv)
        if kind == "DELETED":
            del self._pods[key]
        else:
            self._pods[key] = new
        self._log.append(_Event(self._rv, kind, old, new))
        self._wake()
        return copy.deepcopy(new)

    def compact(self) -> None:
        """Forget history: watches from an older resourceVersion now get 410 Gone."""
        with self._lock:
            self._horizon = self._rv

    async def drop_watches(self) -> None:
        """Cut every open watch connection without a clean end of stream."""
        with self._lock:
            for watcher in self._watchers:
                watcher.dropped = True
        self._wake()
        for _ in range(200):
            with self._lock:
                if not self._watchers:
                    return
            await asyncio.sleep(0.01)

    def _wake(self) -> None:
        loop = self._loop
        if loop is None:
            return
        with self._lock:
            watchers = list(self._watchers)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for watcher in watchers:
            if running is loop:
                watcher.wake.set()
            else:
                loop.call_soon_threadsafe(watcher.wake.set)

    def set_pod_backend(self, namespace: str, name: str, url: str) -> None:
        """Where the pod proxy subresource forwards requests for this pod."""
        self._backends[(namespace, name)] = url.rstrip("/")

    def set_pod_portforward(
        self, namespace: str, name: str, port: int, host: str, target_port: int
    ) -> None:
        """Where the port-forward subresource connects for this pod's container `port`."""
        self._forwards[(namespace, name, port)] = (host, target_port)

    # -- configmaps and nodes (plain stores: nothing watches them here)

    def _stamp(self, obj: JSON, old: JSON | None) -> JSON:
        """Keep the uid and creation time of `old`, give a new resourceVersion (lock held)."""
        self._rv += 1
        meta = obj["metadata"]
        previous = (old or {}).get("metadata", {})
        meta["uid"] = previous.get("uid") or meta.get("uid") or str(uuid.uuid4())
        meta.setdefault("creationTimestamp", rfc3339(datetime.now(UTC)))
        meta["resourceVersion"] = str(self._rv)
        return obj

    def set_configmap(self, namespace: str, name: str, data: dict[str, str]) -> JSON:
        """Create or replace a ConfigMap with this ``data``."""
        with self._lock:
            configmap: JSON = {
                "metadata": {"name": name, "namespace": namespace},
                "data": dict(data),
            }
            key = (namespace, name)
            self._configmaps[key] = self._stamp(configmap, self._configmaps.get(key))
            return copy.deepcopy(configmap)

    def delete_configmap(self, namespace: str, name: str) -> None:
        with self._lock:
            del self._configmaps[(namespace, name)]

    def add_node(self, node: JSON) -> JSON:
        """Create or replace a node (make_node builds one) by name."""
        with self._lock:
            stored = copy.deepcopy(node)
            name = stored["metadata"]["name"]
            self._nodes[name] = self._stamp(stored, self._nodes.get(name))
            return copy.deepcopy(stored)

    def delete_node(self, name: str) -> None:
        with self._lock:
            del self._nodes[name]

    def forbid(self, resource: str) -> None:
        """Answer every request for ``configmaps`` or ``nodes`` with RBAC's 403."""
        self._forbidden.add(resource)

    # -- auth

    def add_token(
        self,
        token: str,
        username: str,
        groups: list[str] | None = None,
        *,
        uid: str | None = None,
        audiences: list[str] | None = None,
        extra: dict[str, list[str]] | None = None,
    ) -> None:
        """A token that TokenReview will accept (audiences default to the API server's)."""
        self._tokens[token] = {
            "username": username,
            "uid": uid or str(uuid.uuid4()),
            "groups": [*(groups or []), "system:authenticated"],
            "extra": extra or {},
            "audiences": audiences or [API_AUDIENCE],
        }

    def allow(
        self,
        subject: str,
        verb: str,
        *,
        path: str | None = None,
        resource: str | None = None,
        subresource: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
        api_group: str = "",
    ) -> None:
        """Grant for SubjectAccessReview; subject is a username or ``group:<name>``.

        ``path`` grants a non-resource URL (trailing ``*`` = prefix); ``resource`` grants
        resource attributes; None for namespace/name/subresource means any; "*" wildcards.
        """
        self._grants.append(
            _Grant(subject, verb, path, resource, subresource, namespace, name, api_group)
        )

    # -- handlers

    def _authorized(self, request: web.Request) -> bool:
        if request.headers.get("Authorization") == f"Bearer {self.token}":
            return True
        self.calls["unauthorized"] += 1
        return False

    @staticmethod
    def _error(code: int, reason: str, message: str) -> web.Response:
        return web.json_response(status_object(code, reason, message), status=code)

    def _unauthorized(self) -> web.Response:
        return self._error(401, "Unauthorized", "Unauthorized")

    def _matcher(self, request: web.Request) -> Callable[[JSON], bool]:
        namespace = request.match_info.get("ns")
        by_field = parse_field_selector(request.query.get("fieldSelector", ""))
        by_label = parse_label_selector(request.query.get("labelSelector", ""))
        return lambda pod: (
            (namespace is None or pod["metadata"]["namespace"] == namespace)
            and by_field(pod)
            and by_label(pod)
        )

    async def _pods_collection(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return self._unauthorized()
        self.pod_requests.append((request.path, dict(request.query)))
        try:
            matches = self._matcher(request)
        except ValueError as err:
            return self._error(400, "BadRequest", str(err))
        if request.query.get("watch", "").lower() in ("true", "1"):
            return await self._watch(request, matches)
        self.calls["list"] += 1
        return self._list(request, matches)

    def _list(self, request: web.Request, matches: Callable[[JSON], bool]) -> web.Response:
        with self._lock:
            rv = self._rv
            items = [copy.deepcopy(p) for _, p in sorted(self._pods.items()) if matches(p)]
        offset = 0
        token = request.query.get("continue")
        if token:
            try:
                rv_text, offset_text = base64.b64decode(token).decode().split(":")
                rv, offset = int(rv_text), int(offset_text)
            except ValueError:
                return self._error(400, "BadRequest", "invalid continue token")
        metadata: JSON = {"resourceVersion": str(rv)}
        limit = int(request.query.get("limit", "0") or 0)
        if limit > 0:
            if offset + limit < len(items):
                metadata["continue"] = base64.b64encode(f"{rv}:{offset + limit}".encode()).decode()
                metadata["remainingItemCount"] = len(items) - offset - limit
            items = items[offset : offset + limit]
        else:
            items = items[offset:]
        body = {"kind": "PodList", "apiVersion": "v1", "metadata": metadata, "items": items}
        return web.json_response(body)

    async def _watch(
        self, request: web.Request, matches: Callable[[JSON], bool]
    ) -> web.StreamResponse:
        self.calls["watch"] += 1
        timeout_text = request.query.get("timeoutSeconds", "") or "1800"
        if not timeout_text.isdigit():
            return self._error(400, "BadRequest", f"invalid timeoutSeconds: {timeout_text}")
        timeout = float(timeout_text)
        bookmarks = request.query.get("allowWatchBookmarks", "").lower() in ("true", "1")
        start = request.query.get("resourceVersion", "")
        if self.expired_as_http_status and start.isdigit() and int(start) < self._horizon:
            message = f"too old resource version: {start} ({self._horizon})"
            return self._error(410, "Expired", message)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        watcher = _Watcher(asyncio.Event())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        with self._lock:
            self._watchers.add(watcher)
            if start in ("", "0"):
                cursor = self._rv
                pending = [("ADDED", p) for _, p in sorted(self._pods.items()) if matches(p)]
            elif not start.isdigit():
                cursor = self._rv
                invalid = status_object(400, "BadRequest", f"invalid resource version: {start}")
                pending = [("ERROR", invalid)]
            elif int(start) < self._horizon:
                cursor = self._rv
                message = f"too old resource version: {start} ({self._horizon})"
                pending = [("ERROR", status_object(410, "Expired", message))]
            else:
                cursor = int(start)
                pending = []
        try:
            next_bookmark = loop.time() + self.bookmark_interval
            while True:
                for kind, obj in pending:
                    await self._send(response, kind, obj)
                    if kind == "ERROR":
                        return await self._finish(response)
                pending = []
                watcher.wake.clear()
                with self._lock:
                    if watcher.dropped:
                        break
                    for event in self._log:
                        if event.rv > cursor:
                            pending.extend(self._visible(event, matches))
                            cursor = event.rv
                    current_rv = self._rv
                if pending:
                    continue
                now = loop.time()
                if now >= deadline:
                    return await self._finish(response)
                if bookmarks and now >= next_bookmark:
                    bookmark = {
                        "kind": "Pod",
                        "apiVersion": "v1",
                        "metadata": {"resourceVersion": str(current_rv)},
                    }
                    await self._send(response, "BOOKMARK", bookmark)
                    cursor = max(cursor, current_rv)
                    next_bookmark = now + self.bookmark_interval
                    continue
                wait = deadline - now
                if bookmarks:
                    wait = min(wait, next_bookmark - now)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(watcher.wake.wait(), timeout=max(wait, 0.001))
        except ConnectionResetError:
            return response
        finally:
            with self._lock:
                self._watchers.discard(watcher)
        if request.transport is not None:
            request.transport.abort()
        return response

    @staticmethod
    def _visible(event: _Event, matches: Callable[[JSON], bool]) -> list[tuple[str, JSON]]:
        """How one change looks to a selector: moves in/out become ADDED/DELETED."""
        was = event.old is not None and event.type != "ADDED" and matches(event.old)
        now = matches(event.new)
        if event.type == "DELETED":
            return [("DELETED", event.new)] if was else []
        if now and not was:
            return [("ADDED", event.new)]
        if was and not now:
            return [("DELETED", event.new)]
        return [(event.type, event.new)] if now else []

    @staticmethod
    async def _send(response: web.StreamResponse, kind: str, obj: JSON) -> None:
        wire = dict(obj)
        if kind in ("ADDED", "MODIFIED", "DELETED"):
            wire = {"kind": "Pod", "apiVersion": "v1", **obj}
        await response.write(json.dumps({"type": kind, "object": wire}).encode() + b"\n")

    @staticmethod
    async def _finish(response: web.StreamResponse) -> web.StreamResponse:
        await response.write_eof()
        return response

    async def _get_pod(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        self.calls["get"] += 1
        ns, name = request.match_info["ns"], request.match_info["name"]
        with self._lock:
            pod = self._pods.get((ns, name))
            if pod is None:
                return self._error(404, "NotFound", f'pods "{name}" not found')
            return web.json_response({"kind": "Pod", "apiVersion": "v1", **copy.deepcopy(pod)})

    async def _proxy(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return self._unauthorized()
        self.calls["proxy"] += 1
        ns, target = request.match_info["ns"], request.match_info["target"]
        parts = target.split(":")
        scheme = "http"
        if parts[0] in ("http", "https") and len(parts) > 1:
            scheme = parts.pop(0)
        name, port = parts[0], (parts[1] if len(parts) > 1 else "")
        path = "/" + request.match_info.get("path", "")
        self.proxy_requests.append(
            (request.method, ns, name, scheme, port, path, request.query_string)
        )
        with self._lock:
            if (ns, name) not in self._pods:
                return self._error(404, "NotFound", f'pods "{name}" not found')
        backend = self._backends.get((ns, name))
        if backend is None:
            return self._error(
                503, "ServiceUnavailable", f"error trying to reach service: no backend for {name}"
            )
        assert self._client is not None
        url = backend + path + (f"?{request.query_string}" if request.query_string else "")
        headers = {
            k: v for k, v in request.headers.items() if k.lower() in ("content-type", "accept")
        }
        try:
            async with self._client.request(
                request.method, url, data=await request.read(), headers=headers
            ) as upstream:
                body = await upstream.read()
                content_type = upstream.headers.get("Content-Type", "application/octet-stream")
                return web.Response(
                    status=upstream.status, body=body, headers={"Content-Type": content_type}
                )
        except aiohttp.ClientError as err:
            return self._error(503, "ServiceUnavailable", f"error trying to reach service: {err}")

    async def _portforward(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return self._unauthorized()
        self.calls["portforward"] += 1
        ns, name = request.match_info["ns"], request.match_info["name"]
        self.portforward_requests.append((ns, name, ",".join(request.query.getall("ports", []))))
        with self._lock:
            pod = self._pods.get((ns, name))
        if pod is None:
            return self._error(404, "NotFound", f'pods "{name}" not found')
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return self._error(400, "BadRequest", "Upgrade request required")
        try:
            ports = _forward_ports(request.query.getall("ports", []))
        except ValueError as err:
            return self._error(400, "BadRequest", str(err))
        ws = web.WebSocketResponse(protocols=(PORTFORWARD_PROTOCOL,))
        await ws.prepare(request)
        for index, port in enumerate(ports):
            prefix = port.to_bytes(2, "little")
            await ws.send_bytes(bytes([2 * index]) + prefix)
            await ws.send_bytes(bytes([2 * index + 1]) + prefix)
        writers: dict[int, asyncio.StreamWriter] = {}
        pumps: list[asyncio.Task[None]] = []
        for index, port in enumerate(ports):
            target = self._forwards.get((ns, name, port))
            try:
                if target is None:
                    raise ConnectionRefusedError(f"dial tcp4 127.0.0.1:{port}: connection refused")
                reader, writers[2 * index] = await asyncio.open_connection(*target)
            except OSError as err:
                uid = pod["metadata"]["uid"]
                message = f"error forwarding port {port} to pod {name}, uid {uid}: {err}"
                await ws.send_bytes(bytes([2 * index + 1]) + message.encode())
                continue
            pumps.append(asyncio.create_task(_pump_to_websocket(reader, ws, 2 * index)))
        try:
            if pumps:
                from_client = asyncio.create_task(_pump_from_websocket(ws, writers))
                ends: list[asyncio.Future[Any]] = [
                    from_client,
                    asyncio.gather(*pumps, return_exceptions=True),
                ]
                await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
                from_client.cancel()
        finally:
            for task in pumps:
                task.cancel()
            for writer in writers.values():
                writer.close()
            await ws.close()
        return ws

    def _rbac_denied(self, verb: str, resource: str, name: str, namespace: str) -> web.Response:
        """The 403 Status the RBAC authorizer gives, wording included."""
        self.calls["forbidden"] += 1
        subject = f'{resource} "{name}"' if name else resource
        scope = f'the namespace "{namespace}"' if namespace else "the cluster scope"
        message = (
            f'{subject} is forbidden: User "fake" cannot {verb} resource "{resource}" '
            f'in API group "" {"in" if namespace else "at"} {scope}'
        )
        return self._error(403, "Forbidden", message)

    async def _get_configmap(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        self.calls["configmaps"] += 1
        ns, name = request.match_info["ns"], request.match_info["name"]
        if "configmaps" in self._forbidden:
            return self._rbac_denied("get", "configmaps", name, ns)
        with self._lock:
            configmap = self._configmaps.get((ns, name))
            if configmap is None:
                return self._error(404, "NotFound", f'configmaps "{name}" not found')
            body = {"kind": "ConfigMap", "apiVersion": "v1", **copy.deepcopy(configmap)}
        return web.json_response(body)

    async def _nodes_collection(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        self.calls["nodes"] += 1
        if "nodes" in self._forbidden:
            return self._rbac_denied("list", "nodes", "", "")
        try:
            by_field = parse_field_selector(request.query.get("fieldSelector", ""), _NODE_FIELDS)
            by_label = parse_label_selector(request.query.get("labelSelector", ""))
        except ValueError as err:
            return self._error(400, "BadRequest", str(err))
        with self._lock:
            items = [
                copy.deepcopy(n)
                for _, n in sorted(self._nodes.items())
                if by_field(n) and by_label(n)
            ]
            rv = self._rv
        body = {
            "kind": "NodeList",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": str(rv)},
            "items": items,
        }
        return web.json_response(body)

    async def _review_body(self, request: web.Request, kind: str) -> JSON | web.Response:
        try:
            body = await request.json()
        except ValueError:
            return self._error(400, "BadRequest", "request body is not JSON")
        if not isinstance(body, dict) or body.get("kind") != kind:
            return self._error(400, "BadRequest", f"expected kind {kind}")
        if not isinstance(body.get("spec"), dict):
            return self._error(400, "BadRequest", "spec is required")
        return body

    async def _token_review(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        self.calls["tokenreviews"] += 1
        body = await self._review_body(request, "TokenReview")
        if isinstance(body, web.Response):
            return body
        spec = body["spec"]
        known = self._tokens.get(str(spec.get("token", "")))
        wanted = spec.get("audiences") or [API_AUDIENCE]
        status: JSON = {"user": {}}
        if known is None:
            status["error"] = "invalid bearer token"
        else:
            common = [a for a in wanted if a in known["audiences"]]
            if not common:
                status["error"] = "token audiences do not match"
            else:
                status = {
                    "authenticated": True,
                    "user": {
                        "username": known["username"],
                        "uid": known["uid"],
                        "groups": list(known["groups"]),
                        "extra": dict(known["extra"]),
                    },
                    "audiences": common,
                }
        out: JSON = {"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1"}
        out |= {"metadata": {"creationTimestamp": None}, "spec": spec, "status": status}
        return web.json_response(out, status=201)

    async def _access_review(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        self.calls["subjectaccessreviews"] += 1
        body = await self._review_body(request, "SubjectAccessReview")
        if isinstance(body, web.Response):
            return body
        spec = body["spec"]
        self.access_reviews.append(copy.deepcopy(spec))
        if ("resourceAttributes" in spec) == ("nonResourceAttributes" in spec):
            return self._error(
                422,
                "Invalid",
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            )
        user, groups = str(spec.get("user", "")), list(spec.get("groups") or [])
        allowed = any(g.covers(user, groups, spec) for g in self._grants)
        status: JSON = {"allowed": allowed}
        if allowed:
            status["reason"] = "granted by the fake API server"
        out: JSON = {"kind": "SubjectAccessReview", "apiVersion": "authorization.k8s.io/v1"}
        out |= {"metadata": {"creationTimestamp": None}, "spec": spec, "status": status}
        return web.json_response(out, status=201)


def _forward_ports(values: list[str]) -> list[int]:
    """The `ports` query values as kubelet parses them (comma lists, 1..65535)."""
    if not values:
        raise ValueError('query parameter "port" is required')
    ports: list[int] = []
    for value in values:
        if not value:
            raise ValueError('query parameter "port" cannot be empty')
        for text in value.split(","):
            if not text.isdigit() or int(text) > 65535:
                raise ValueError(f'unable to parse "{value}" as a port')
            if int(text) < 1:
                raise ValueError(f'port "{value}" must be > 0')
            ports.append(int(text))
    return ports


async def _pump_to_websocket(
    reader: asyncio.StreamReader, ws: web.WebSocketResponse, channel: int
) -> None:
    """Pod side → client, each chunk one binary message on the port's data channel."""
    with contextlib.suppress(ConnectionError):
        while chunk := await reader.read(64 * 1024):
            await ws.send_bytes(bytes([channel]) + chunk)


async def _pump_from_websocket(
    ws: web.WebSocketResponse, writers: dict[int, asyncio.StreamWriter]
) -> None:
    """Client → pod side: data-channel messages are written to that port's connection."""
    async for message in ws:
        if message.type != aiohttp.WSMsgType.BINARY or not message.data:
            continue
        writer = writers.get(message.data[0])
        if writer is None:
            continue
        try:
            writer.write(message.data[1:])
            await writer.drain()
        except ConnectionError:
            return
