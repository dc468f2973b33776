"""The other exporters of the DaemonSet, asked for their node's share of a custom metric.

Why: the APIService routes each HPA request to one random exporter behind the Service, but
a Deployment's pods run on many nodes. The exporter that receives the request therefore
asks every peer for its *local* answer and merges them (`exporter.http.custom_metrics`).

Peers are the DaemonSet's pods (exporter/cluster/daemonset.py), listed in the exporter's
own namespace with the DaemonSet's selector and cached for `PEER_LIST_TTL_SECONDS`. Each peer is
called directly at its pod IP over TLS, verified against the CA that signed the peers'
serving certificates under the Service's DNS name (the only name in those certificates),
with this exporter's own service-account token: the peer authorizes it like any caller, so
the right to read peers is ordinary RBAC. Handing our token to a peer gives it nothing new —
every peer runs as the same service account.

A peer request carries `scope=node`, which makes the peer answer from its own node and
never fan out again, so requests cannot loop. Every peer has its own deadline; a peer that
fails is logged and counted, and the answer is built from the others.

So that one HPA query does not cost one request per node of a big cluster, only the
nodes that run the selected pods are asked: the API server's pod list (from its watch
cache, `resourceVersion=0`) says where each runs, and is reused for `NODES_TTL_SECONDS`.
A peer's answer is reused for as long as it says (`Cache-Control: max-age`, the time until
its next snapshot), at most `PARALLEL_PEERS` are asked at once, and the whole fan-out
ends at its own deadline: peers that have not answered by then count as failed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import orjson
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter.cluster.daemonset import list_exporter_pods
from exporter.kube.client import ApiError, KubeClient, ResponseTooLarge, api_path, read_capped

log = logging.getLogger(__name__)

SCOPE_PARAM = "scope"
LOCAL_SCOPE = "node"
"""`?scope=node`: answer for this node only (what peers are asked; never fans out)."""

PEER_LIST_TTL_SECONDS = 30.0
NODES_TTL_SECONDS = 10.0
PARALLEL_PEERS = 64
MAX_PEER_RESPONSE_BYTES = 16 * 1024 * 1024
MAX_CACHED_ANSWERS = 4096
Item = dict[str, Any]
AnswerKey = tuple[str, str, str, tuple[tuple[str, str], ...]]


@dataclass(frozen=True)
class Peer:
    """One other exporter pod: where it runs and where it listens."""

    pod: str
    node: str
    address: str

    def url(self, port: int, path: str) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"https://{host}:{port}{path}"


class PeerSource(Protocol):
    """The API lookups the fan-out needs."""

    async def list_peers(self) -> list[Peer]: ...

    async def node_of(self, namespace: str, pod: str) -> str | None: ...

    async def nodes_running(self, namespace: str, selector: str) -> set[str] | None: ...


class PeerListError(Exception):
    """The API server did not give the list of peers."""


class KubePeerSource:
    """The DaemonSet's running pods on other nodes, from the API server."""

    def __init__(
        self, client: KubeClient, namespace: str, selector: str, own_node: str, timeout: float
    ) -> None:
        self._client = client
        self._namespace = namespace
        self._selector = selector
        self._own_node = own_node
        self._timeout = timeout

    async def list_peers(self) -> list[Peer]:
        try:
            pods = await list_exporter_pods(
                self._client, self._namespace, self._selector, timeout=self._timeout, cached=True
            )
        except ApiError as exc:
            raise PeerListError(
                f"listing pods {self._selector!r} in {self._namespace}: "
                f"HTTP {exc.status} {exc.reason}"
            ) from exc
        except (httpx.HTTPError, OSError, ValueError) as exc:
            raise PeerListError(f"no usable pod list from the API server: {exc}") from exc
        return [
            Peer(p.name, p.node, p.address)
            for p in pods
            if p.serving and p.node and p.node != self._own_node and p.address
        ]

    async def node_of(self, namespace: str, pod: str) -> str | None:
        path = api_path("/api/v1/namespaces/{namespace}/pods/{name}", namespace=namespace, name=pod)
        try:
            found = await self._client.get_json(path, timeout=self._timeout)
        except (ApiError, httpx.HTTPError, OSError, ValueError) as exc:
            log.info("cannot tell the node of pod %s/%s: %s", namespace, pod, exc)
            return None
        node = (found.get("spec") or {}).get("nodeName") if isinstance(found, dict) else None
        return str(node) if node else None

    async def nodes_running(self, namespace: str, selector: str) -> set[str] | None:
        """The nodes of the namespace's pods that ``selector`` selects; None when the API
        cannot tell (then every peer is asked)."""
        path = api_path("/api/v1/namespaces/{namespace}/pods", namespace=namespace)
        params: list[tuple[str, str | int | bool]] = [("resourceVersion", "0")]
        if selector:
            params.append(("labelSelector", selector))
        try:
            listed = await self._client.get_json(path, params, timeout=self._timeout)
        except (ApiError, httpx.HTTPError, OSError, ValueError) as exc:
            log.info("cannot tell where the pods of %s run: %s", namespace, exc)
            return None
        items = listed.get("items") if isinstance(listed, dict) else None
        return {
            str(node)
            for item in items or []
            if isinstance(item, dict) and (node := (item.get("spec") or {}).get("nodeName"))
        }


class PeerDirectory:
    """The peer list, refreshed at most once per TTL; a failed refresh keeps the old list."""

    def __init__(
        self,
        source: PeerSource,
        ttl: float = PEER_LIST_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        nodes_ttl: float = NODES_TTL_SECONDS,
    ) -> None:
        self._source = source
        self._ttl = ttl
        self._clock = clock
        self._peers: list[Peer] = []
        self._expires = float("-inf")
        self._lock = asyncio.Lock()
        self._nodes_ttl = nodes_ttl
        self._nodes: dict[tuple[str, str], tuple[float, set[str] | None]] = {}
        self.list_errors = 0

    async def peers(self) -> list[Peer]:
        if self._clock() < self._expires:
            return self._peers
        async with self._lock:
            if self._clock() < self._expires:
                return self._peers
            try:
                self._peers = await self._source.list_peers()
            except PeerListError as exc:
                self.list_errors += 1
                log.warning(
                    "peer list not refreshed, using %d known peers: %s", len(self._peers), exc
                )
            self._expires = self._clock() + self._ttl
            return self._peers

    async def node_of(self, namespace: str, pod: str) -> str | None:
        return await self._source.node_of(namespace, pod)

    async def nodes_running(self, namespace: str, selector: str) -> set[str] | None:
        """Where the selected pods run, reused for ``nodes_ttl`` (a failed lookup is not)."""
        key = (namespace, selector)
        now = self._clock()
        cached = self._nodes.get(key)
        if cached is not None and now < cached[0]:
            return cached[1]
        nodes = await self._source.nodes_running(namespace, selector)
        if nodes is not None:
            if len(self._nodes) >= MAX_CACHED_ANSWERS:
                self._nodes.clear()
            self._nodes[key] = (now + self._nodes_ttl, nodes)
        return nodes


class PeerError(Exception):
    """A peer's answer could not be used."""


class PeerCA:
    """A client TLS context trusting the peers' CA file, re-read when the file changes.

    The CA may be absent at start (injected later) and rotates; a new CA is added to the
    trust store (OpenSSL cannot remove one), which is what a rotation overlap needs anyway.
    """

    def __init__(self, ca_file: str) -> None:
        self._file = ca_file
        self._state: tuple[int, int, int] | None = None
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.refresh()

    def refresh(self) -> None:
        try:
            st = os.stat(self._file)
        except OSError:
            return
        state = (st.st_ino, st.st_size, st.st_mtime_ns)
        if state == self._state:
            return
        try:
            self.context.load_verify_locations(cafile=self._file)
        except (OSError, ssl.SSLError) as exc:
            log.warning("cannot load the peers' CA %s: %s", self._file, exc)
            return
        self._state = state


def _items(body: bytes, namespace: str) -> list[Item]:
    """The items of a peer's MetricValueList, checked for the fields the merge relies on."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PeerError(f"answer is not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("kind") != "MetricValueList":
        raise PeerError("answer is not a MetricValueList")
    items = doc.get("items")
    if not isinstance(items, list):
        raise PeerError("answer has no items list")
    for item in items:
        described = item.get("describedObject") if isinstance(item, dict) else None
        if not (
            isinstance(described, dict)
            and described.get("namespace") == namespace
            and isinstance(described.get("name"), str)
            and isinstance(item.get("metric"), dict)
            and isinstance(item.get("timestamp"), str)
            and isinstance(item.get("value"), str)
        ):
            raise PeerError("answer has a malformed or foreign item")
    return items


def _max_age(cache_control: str) -> float:
    """``max-age`` of a Cache-Control header in seconds (0: do not reuse)."""
    for part in cache_control.split(","):
        name, _, value = part.strip().partition("=")
        if name.lower() == "max-age" and value.strip().isdigit():
            return float(value.strip())
    return 0.0


def _status_message(response: httpx.Response, body: bytes) -> str:
    try:
        doc = orjson.loads(body)
        message = str(doc.get("message") or "") if isinstance(doc, dict) else ""
    except orjson.JSONDecodeError:
        message = body[:200].decode("utf-8", "replace").strip()
    return f"HTTP {response.status_code}" + (f": {message}" if message else "")


class Peers:
    """Asks peers for their local answer to a custom metrics request, in parallel."""

    def __init__(
        self,
        directory: PeerDirectory,
        *,
        port: int,
        ca: PeerCA,
        server_name: str,
        auth: httpx.Auth,
        timeout: float,
        fanout_timeout: float | None = None,
        concurrency: int = PARALLEL_PEERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = directory
        self._port = port
        self._ca = ca
        self._server_name = server_name
        self._timeout = timeout
        self._fanout_timeout = fanout_timeout if fanout_timeout is not None else 3 * timeout
        self._gate = asyncio.Semaphore(concurrency)
        self._clock = clock
        self._client = httpx.AsyncClient(
            verify=ca.context,
            auth=auth,
            timeout=timeout,
            headers={"Accept": "application/json"},
            limits=httpx.Limits(max_connections=concurrency),
        )
        # event streams stay open: a client of their own, so they never hold the
        # connections metric requests need
        self._streams = httpx.AsyncClient(
            verify=ca.context,
            auth=auth,
            timeout=timeout,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=0),
        )
        self._answers: dict[AnswerKey, tuple[float, list[Item]]] = {}
        self.requests: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.reused = 0

    async def aclose(self) -> None:
        await self._client.aclose()
        await self._streams.aclose()

    async def _ask(
        self, peer: Peer, path: str, params: Mapping[str, str], namespace: str, named: bool
    ) -> list[Item]:
        """One peer's items, reused while the peer said they hold; a 404 for a named pod
        means it is not there (no items)."""
        key = (peer.node, peer.address, path, tuple(sorted(params.items())))
        cached = self._answers.get(key)
        if cached is not None and self._clock() < cached[0]:
            self.reused += 1
            return cached[1]
        items, max_age = await self._request(peer, path, params, namespace, named)
        if max_age > 0:
            if len(self._answers) >= MAX_CACHED_ANSWERS:
                now = self._clock()
                self._answers = {k: v for k, v in self._answers.items() if v[0] > now}
                if len(self._answers) >= MAX_CACHED_ANSWERS:
                    self._answers.clear()
            self._answers[key] = (self._clock() + max_age, items)
        return items

    async def _request(
        self, peer: Peer, path: str, params: Mapping[str, str], namespace: str, named: bool
    ) -> tuple[list[Item], float]:
        # the deadline runs from the moment the request is sent, not while it waits its turn
        async with self._gate, asyncio.timeout(self._timeout):
            self.requests[peer.node] += 1
            async with self._client.stream(
                "GET",
                peer.url(self._port, path),
                params={**params, SCOPE_PARAM: LOCAL_SCOPE},
                extensions={"sni_hostname": self._server_name},
            ) as response:
                try:
                    body = await read_capped(response, MAX_PEER_RESPONSE_BYTES)
                except ResponseTooLarge as exc:
                    raise PeerError(str(exc)) from None
        max_age = _max_age(response.headers.get("Cache-Control", ""))
        if response.status_code == 404 and named:
            return [], max_age
        if response.status_code != 200:
            raise PeerError(_status_message(response, body))
        return _items(body, namespace), max_age

    async def _guarded(
        self, peer: Peer, path: str, params: Mapping[str, str], namespace: str, named: bool
    ) -> list[Item]:
        try:
            return await self._ask(peer, path, params, namespace, named)
        except TimeoutError:
            error = f"no answer within {self._timeout:g}s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        except PeerError as exc:
            error = str(exc)
        self.errors[peer.node] += 1
        log.warning("peer %s (pod %s at %s) failed: %s", peer.node, peer.pod, peer.address, error)
        return []

    async def gather(
        self,
        path: str,
        query: Mapping[str, str],
        namespace: str,
        pod: str,
        *,
        selector: str | None = None,
    ) -> list[Item]:
        """Every reachable peer's items for `path`, in node order.

        For a named pod, only the peer on that pod's node is asked when the API says where
        the pod runs (none if that is this node); for ``*`` with a ``selector`` (``""``:
        every pod of the namespace), only the peers on the nodes those pods run on;
        otherwise all. `query` is forwarded (minus any scope marker).
        """
        peers = await self.directory.peers()
        if pod != "*":
            node = await self.directory.node_of(namespace, pod)
            if node is not None:
                peers = [p for p in peers if p.node == node][:1]
        elif selector is not None and peers:
            nodes = await self.directory.nodes_running(namespace, selector)
            if nodes is not None:
                peers = [p for p in peers if p.node in nodes]
        if not peers:
            return []
        self._ca.refresh()
        params = {k: v for k, v in query.items() if k != SCOPE_PARAM}
        named = pod != "*"
        tasks = [
            asyncio.ensure_future(self._guarded(p, path, params, namespace, named)) for p in peers
        ]
        done, late = await asyncio.wait(tasks, timeout=self._fanout_timeout)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)
            for peer, task in zip(peers, tasks, strict=True):
                if task in late:
                    self.errors[peer.node] += 1
            log.warning(
                "%d of %d peers did not answer within the fan-out deadline of %gs",
                len(late),
                len(peers),
                self._fanout_timeout,
            )
        return [item for task in tasks if task in done for item in task.result()]

    @asynccontextmanager
    async def stream(
        self, peer: Peer, path: str, params: Mapping[str, str], read_timeout: float
    ) -> AsyncIterator[httpx.Response]:
        """A long-lived GET of ``path`` on ``peer`` (an event stream), verified and
        authenticated as every peer call; PeerError for an answer other than 200."""
        self._ca.refresh()
        timeout = httpx.Timeout(read_timeout, connect=self._timeout)
        async with self._streams.stream(
            "GET",
            peer.url(self._port, path),
            params=dict(params),
            headers={"Accept": "text/event-stream"},
            timeout=timeout,
            extensions={"sni_hostname": self._server_name},
        ) as response:
            if response.status_code != 200:
                body = await read_capped(response, 64 * 1024)
                raise PeerError(_status_message(response, body))
            yield response

    def collector(self) -> Collector:
        return _PeerCollector(self)


class _PeerCollector(Collector):
    def __init__(self, peers: Peers) -> None:
        self._peers = peers

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "runtime_insights_exporter_peer_requests",
            "custom metrics requests sent to peer exporters, by the peer's node",
            labels=["peer"],
        )
        errors = CounterMetricFamily(
            "runtime_insights_exporter_peer_errors",
            "peer requests that failed (unreachable, refused, timed out, bad answer)",
            labels=["peer"],
        )
        for node, count in sorted(self._peers.requests.items()):
            requests.add_metric([node], count)
        for node, count in sorted(self._peers.errors.items()):
            errors.add_metric([node], count)
        yield requests
        yield errors
        yield CounterMetricFamily(
            "runtime_insights_exporter_peer_answers_reused",
            "peer answers reused within the peer's snapshot interval instead of asking again",
            value=self._peers.reused,
        )
        yield CounterMetricFamily(
            "runtime_insights_exporter_peer_list_errors",
            "failed refreshes of the peer list from the API server",
            value=self._peers.directory.list_errors,
        )
